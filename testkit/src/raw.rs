//! Calls with messages as bytes, whatever their type: for tests that send
//! what no generated stub would (malformed protobuf) or that treat every
//! method of the descriptors alike (the authorization matrix).

use prost::bytes::{Buf, BufMut};
use tonic::{
    Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

/// Sends bytes as they are and reads the reply as bytes.
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

/// Writes a request's bytes unchanged.
#[derive(Debug)]
pub struct RawEncoder;

/// Reads a response's bytes unchanged.
#[derive(Debug)]
pub struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Calls the unary method at `path` (`/pkg.Service/Method`) with `body`,
/// bearing `token`; answers the response's bytes.
pub async fn call_raw(
    channel: Channel,
    path: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = Request::new(body);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("a token is ASCII"))?,
    );
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path)
        .map_err(|_| Status::invalid_argument(format!("{path} is not a gRPC path")))?;
    grpc.unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}
