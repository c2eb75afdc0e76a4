//! The two bodies of a proxied call. The gateway never decodes a message, but
//! it reads the 5-byte gRPC frame headers of the request to refuse an oversize
//! message before the upstream buffers it, counts bytes both ways, and ends
//! the response itself (with proper gRPC trailers) when the deadline passes,
//! the request was refused mid-stream, or the upstream connection breaks.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::time::Instant;

use tokio::time::Sleep;
use tonic::{Code, Status};

use crate::{
    access::CallRecord,
    proxy::{CallPermits, deadline_exceeded},
};

/// What the request side tells the response side.
#[derive(Default)]
pub struct CallSignals {
    /// Request bytes forwarded so far.
    pub bytes_in: AtomicU64,
    /// The size of a request message over the limit, or 0.
    oversize: AtomicU64,
}

impl CallSignals {
    /// The size of the request message that was refused, if one was.
    pub fn oversize(&self) -> Option<u64> {
        match self.oversize.load(Ordering::Acquire) {
            0 => None,
            size => Some(size),
        }
    }
}

/// The RESOURCE_EXHAUSTED answer to an oversize request message.
pub fn oversize_status(size: u64, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "request message of {size} bytes is larger than the gateway's limit of {limit} bytes"
    ))
}

/// Where the reader is in the stream of length-prefixed gRPC messages.
#[derive(Debug, Default)]
struct FrameCursor {
    header: [u8; 5],
    header_filled: usize,
    payload_left: u64,
}

impl FrameCursor {
    /// Reads `data`; fails with the message size if a message is over `limit`.
    fn advance(&mut self, mut data: &[u8], limit: usize) -> Result<(), u64> {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let take = self.payload_left.min(data.len() as u64);
                self.payload_left -= take;
                data = &data[take as usize..];
                continue;
            }
            self.header[self.header_filled] = data[0];
            self.header_filled += 1;
            data = &data[1..];
            if self.header_filled == self.header.len() {
                self.header_filled = 0;
                let [_, a, b, c, d] = self.header;
                let size = u64::from(u32::from_be_bytes([a, b, c, d]));
                if size > limit as u64 {
                    return Err(size);
                }
                self.payload_left = size;
            }
        }
        Ok(())
    }
}

/// The most request bytes gathered into one write upstream.
const GATHER_BYTES: usize = 64 * 1024;

/// The request body on its way upstream: counted, cut off at the first
/// oversize message (the upstream sees the stream reset), and with the DATA
/// frames already received gathered into one write. Clients such as grpcio
/// send every message in a frame of its own; passed on one by one, the
/// frames of several streams queued on the gateway's one connection to a
/// replica exceed hyper's budget for unread small frames and the replica
/// closes that connection, failing every call on it. Gathered, they cross as
/// few full-size frames, and nothing waits: only what is already here is taken.
pub struct RequestBody {
    inner: axum::body::Body,
    cursor: FrameCursor,
    limit: usize,
    signals: Arc<CallSignals>,
    /// What ended a gathering (trailers, an error, or the end), handed on next.
    held: Option<Option<Result<Frame<Bytes>, Status>>>,
    /// The client's body has ended.
    ended: bool,
}

impl RequestBody {
    /// Wraps the client's body.
    pub fn new(inner: axum::body::Body, limit: usize, signals: Arc<CallSignals>) -> Self {
        Self {
            inner,
            cursor: FrameCursor::default(),
            limit,
            signals,
            held: None,
            ended: false,
        }
    }

    /// Counts and checks one DATA payload.
    fn inspect(&mut self, data: &Bytes) -> Result<(), Status> {
        self.signals
            .bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.cursor.advance(data, self.limit).map_err(|size| {
            self.signals.oversize.store(size, Ordering::Release);
            oversize_status(size, self.limit)
        })
    }

    /// The client's next frame, or what was held back for now.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(held) = self.held.take() {
            return Poll::Ready(held);
        }
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                Poll::Ready(Some(Err(Status::cancelled(error.to_string()))))
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let mut gathered = Gathered::default();
        loop {
            let next = match this.poll_next(cx) {
                Poll::Pending if gathered.is_empty() => return Poll::Pending,
                Poll::Pending => break,
                Poll::Ready(next) => next,
            };
            let data = match next {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(trailers) => {
                        this.held = Some(Some(Ok(trailers)));
                        break;
                    }
                },
                other => {
                    this.held = Some(other);
                    break;
                }
            };
            if let Err(status) = this.inspect(&data) {
                return Poll::Ready(Some(Err(status)));
            }
            gathered.push(data);
            if gathered.len() >= GATHER_BYTES {
                break;
            }
        }
        match gathered.into_bytes() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => Poll::Ready(this.held.take().flatten()),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.held {
            Some(held) => held.is_none(),
            None => self.ended || self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// DATA payloads gathered into one, copied only when there are several.
#[derive(Default)]
struct Gathered {
    first: Option<Bytes>,
    more: Option<BytesMut>,
}

impl Gathered {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn len(&self) -> usize {
        self.more
            .as_ref()
            .map(BytesMut::len)
            .or(self.first.as_ref().map(Bytes::len))
            .unwrap_or(0)
    }

    fn push(&mut self, data: Bytes) {
        match (&self.first, &mut self.more) {
            (None, _) => self.first = Some(data),
            (Some(_), Some(more)) => more.extend_from_slice(&data),
            (Some(first), None) => {
                let mut more = BytesMut::with_capacity(GATHER_BYTES.max(first.len() + data.len()));
                more.extend_from_slice(first);
                more.extend_from_slice(&data);
                self.more = Some(more);
            }
        }
    }

    fn into_bytes(self) -> Option<Bytes> {
        match self.more {
            Some(more) => Some(more.freeze()),
            None => self.first,
        }
    }
}

/// The upstream's response on its way to the client.
pub struct ResponseBody {
    /// `None` once the gateway has ended the call; dropping it resets the
    /// upstream stream, so the upstream sees the cancellation.
    inner: Option<tonic::body::Body>,
    /// When the call must end, and the timer that wakes the body then.
    deadline: Option<(Instant, Pin<Box<Sleep>>)>,
    signals: Arc<CallSignals>,
    limit: usize,
    record: Option<CallRecord>,
    /// The status, once known: from a trailers-only answer's headers or the trailers.
    code: Option<i32>,
    /// Held until the call ends: the gateway's in-flight limit counts streams.
    _permits: CallPermits,
}

impl ResponseBody {
    /// Wraps the upstream's body; `headers` are the response headers (where a
    /// trailers-only answer carries its status).
    pub fn new(
        inner: tonic::body::Body,
        headers: &HeaderMap,
        deadline: Option<(Instant, Pin<Box<Sleep>>)>,
        signals: Arc<CallSignals>,
        limit: usize,
        record: CallRecord,
        permits: CallPermits,
    ) -> Self {
        Self {
            inner: Some(inner),
            deadline,
            signals,
            limit,
            record: Some(record),
            code: grpc_status(headers),
            _permits: permits,
        }
    }

    /// Ends the call with the gateway's own status, as trailers.
    fn end_with(&mut self, status: Status) -> Frame<Bytes> {
        self.inner = None;
        self.code = Some(status.code() as i32);
        self.finish();
        let mut trailers = status.into_http::<()>().into_parts().0.headers;
        trailers.remove(http::header::CONTENT_TYPE);
        Frame::trailers(trailers)
    }

    /// Writes the access log line and the metrics, once.
    fn finish(&mut self) {
        if let Some(record) = self.record.take() {
            // A stream that stopped without a status was cancelled by the client.
            let code = self.code.unwrap_or(Code::Cancelled as i32);
            record.finish(code);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some((_, timer)) = this.deadline.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Ok(this.end_with(deadline_exceeded()))));
        }
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(record) = this.record.as_mut() {
                        record.bytes_out += data.len() as u64;
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    this.code = grpc_status(trailers).or(Some(Code::Unknown as i32));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                let expired = this
                    .deadline
                    .as_ref()
                    .is_some_and(|(at, _)| Instant::now() >= *at);
                let status = match this.signals.oversize() {
                    Some(size) => oversize_status(size, this.limit),
                    // The upstream ended the stream at the deadline it was given.
                    None if expired => deadline_exceeded(),
                    None => {
                        tracing::warn!(%error, "a replica's stream broke mid-call");
                        Status::unavailable("the connection to the service broke mid-call")
                    }
                };
                Poll::Ready(Some(Ok(this.end_with(status))))
            }
            Poll::Ready(None) => {
                this.inner = None;
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Delegating keeps a trailers-only answer trailers-only (HEADERS with
        // END_STREAM), which strict clients require.
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The `grpc-status` in headers or trailers.
pub fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len as usize));
        out
    }

    #[test]
    fn messages_within_the_limit_pass_however_they_are_split() {
        let stream: Vec<u8> = [frame(10), frame(0), frame(100)].concat();
        for chunk in [1, 3, 5, 7, 200] {
            let mut cursor = FrameCursor::default();
            for piece in stream.chunks(chunk) {
                assert_eq!(cursor.advance(piece, 100), Ok(()), "chunk {chunk}");
            }
            assert_eq!((cursor.header_filled, cursor.payload_left), (0, 0));
        }
    }

    #[test]
    fn an_oversize_message_is_caught_from_its_header() {
        let stream: Vec<u8> = [frame(10), frame(101)].concat();
        for chunk in [1, 2, 16] {
            let mut cursor = FrameCursor::default();
            let outcome = stream
                .chunks(chunk)
                .try_for_each(|piece| cursor.advance(piece, 100));
            assert_eq!(outcome, Err(101), "chunk {chunk}");
        }
    }
}
