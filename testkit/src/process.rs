//! A service of the suite running as it would in its own process: its own
//! runtime on its own threads, a real listening socket, its own pool. A test
//! stops it gracefully (as on SIGTERM) or kills it (every task and socket
//! dropped at once, as SIGKILL would) and starts it again on the same address
//! and database.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use crm_shared::{
    config::Settings,
    kit::{KitError, ServiceKit},
};
use sea_orm_migration::MigratorTrait;
use tokio::{runtime::Runtime, sync::oneshot};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{channel_to, health_status};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How to build a service from its settings and run it until a signal:
/// made by [`service`] from a service's `build` function.
pub type Launch = Arc<
    dyn Fn(
            Settings,
            BoxFuture<()>,
        ) -> BoxFuture<Result<(SocketAddr, BoxFuture<Result<(), String>>), String>>
        + Send
        + Sync,
>;

/// The [`Launch`] of a service whose `build` makes a [`ServiceKit`]
/// (`testkit::service(crm_sales::build)`).
pub fn service<M, F, Fut>(build: F) -> Launch
where
    M: MigratorTrait + Send + 'static,
    F: Fn(Settings) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ServiceKit<M>, KitError>> + Send + 'static,
{
    let build = Arc::new(build);
    Arc::new(move |settings, shutdown| {
        let build = build.clone();
        Box::pin(async move {
            let kit = build(settings).await.map_err(|e| e.to_string())?;
            let addr = kit.local_addr();
            let run: BoxFuture<Result<(), String>> = Box::pin(async move {
                kit.run_until_stopped(shutdown)
                    .await
                    .map_err(|e| e.to_string())
            });
            Ok((addr, run))
        })
    })
}

/// A running service.
pub struct ServiceProcess {
    /// Where it listens (kept across restarts).
    pub addr: SocketAddr,
    /// What it was started with (its listen address fixed after the first start).
    pub settings: Settings,
    launch: Launch,
    runtime: Option<Runtime>,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<Result<(), String>>>,
}

impl ServiceProcess {
    /// Starts the service and waits until its health says SERVING.
    pub async fn start(launch: Launch, settings: Settings) -> Self {
        crate::logs::capture();
        let mut process = Self {
            addr: settings.service.listen_addr,
            settings,
            launch,
            runtime: None,
            stop: None,
            stopped: None,
        };
        process.restart().await;
        process
    }

    /// Starts it (again, after [`kill`](Self::kill) or [`stop`](Self::stop))
    /// on the same address and database, and waits until it is SERVING.
    pub async fn restart(&mut self) {
        self.kill();
        let (done, stopped) = oneshot::channel();
        let launch = self.launch.clone();
        let settings = self.settings.clone();
        // A runtime cannot be built or blocked on inside the test's own: make
        // and drive it from a plain thread, then keep it.
        let (runtime, started) = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            let started = runtime.block_on(async {
                let mut last_error = String::new();
                // A port just released may take a moment to bind again.
                for _ in 0..50 {
                    let (stop, stop_signal) = oneshot::channel::<()>();
                    let shutdown: BoxFuture<()> = Box::pin(async move {
                        let _ = stop_signal.await;
                    });
                    match launch(settings.clone(), shutdown).await {
                        Ok((addr, run)) => return Ok((addr, run, stop)),
                        Err(error) if error.contains("cannot listen") => {
                            last_error = error;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(error) => return Err(error),
                    }
                }
                Err(last_error)
            });
            (runtime, started)
        })
        .join()
        .expect("the service's thread");
        let (addr, run, stop) =
            started.unwrap_or_else(|error| panic!("the service did not start: {error}"));
        runtime.spawn(async move {
            let _ = done.send(run.await);
        });
        self.addr = addr;
        self.settings.service.listen_addr = addr;
        self.runtime = Some(runtime);
        self.stop = Some(stop);
        self.stopped = Some(stopped);
        self.wait_until_serving().await;
    }

    async fn wait_until_serving(&mut self) {
        let channel = self.channel();
        for _ in 0..1500 {
            if let Some(stopped) = self.stopped.as_mut()
                && let Ok(outcome) = stopped.try_recv()
            {
                panic!("the service stopped before it was SERVING: {outcome:?}");
            }
            if matches!(
                health_status(&channel, "").await,
                Ok(ServingStatus::Serving)
            ) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the service at {} did not report SERVING within 30 s",
            self.addr
        );
    }

    /// Kills it: no drain, no goodbye, nothing released.
    pub fn kill(&mut self) {
        self.stop = None;
        self.stopped = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Stops it as SIGTERM would and waits until it has finished; panics
    /// when it stopped with an error.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            match stopped.await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(error)) => panic!("the service stopped with an error: {error}"),
            }
        }
        self.kill();
    }

    /// A channel to it, without credentials.
    pub fn channel(&self) -> Channel {
        channel_to(self.addr)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
