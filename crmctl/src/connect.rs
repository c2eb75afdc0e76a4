//! Where the gateway is and how to prove who we are: flags, then `CRMCTL_*`
//! variables (clap reads both), then the profile in the config file, then
//! defaults.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use serde::Deserialize;
use tonic::{
    metadata::AsciiMetadataValue,
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

use crate::exit::usage;

/// The gateway when nothing says otherwise: `make run`'s.
const DEFAULT_GATEWAY: &str = "http://127.0.0.1:50051";

/// Connection flags, shared by every command.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The gateway's URL: http://host:port, or https://host:port for TLS.
    #[arg(long, global = true, env = "CRMCTL_GATEWAY")]
    gateway: Option<String>,
    /// The bearer token to send.
    #[arg(long, global = true, env = "CRMCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the bearer token (read at each run, so it can be refreshed).
    #[arg(long, global = true, env = "CRMCTL_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// A PEM file of the CA that signed the gateway's certificate (https only),
    /// trusted besides the system's roots.
    #[arg(long, global = true, env = "CRMCTL_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// The name to check the gateway's certificate against, when it differs
    /// from the URL's host (https only).
    #[arg(long, global = true, env = "CRMCTL_TLS_SERVER_NAME")]
    tls_server_name: Option<String>,
    /// The profile of the config file to use.
    #[arg(long, global = true, env = "CRMCTL_PROFILE", default_value = "default")]
    profile: String,
    /// The config file.
    #[arg(long, global = true, env = "CRMCTL_CONFIG")]
    config: Option<PathBuf>,
    /// Seconds a unary call may take.
    #[arg(long, global = true, env = "CRMCTL_TIMEOUT", default_value_t = 30)]
    timeout: u64,
}

/// One `[profiles.<name>]` table of the config file; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    gateway: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    tls_server_name: Option<String>,
}

/// The resolved gateway and credentials.
#[derive(Debug, Clone)]
pub struct Target {
    pub gateway: String,
    token: Option<String>,
    ca_cert: Option<PathBuf>,
    tls_server_name: Option<String>,
    timeout: Duration,
}

impl Target {
    /// Resolves flags and environment over the profile over defaults.
    pub fn resolve(options: &Options) -> anyhow::Result<Self> {
        let profile = read_profile(options)?;
        let token = match (&options.token, &options.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(file)) => Some(read_token(file)?),
            (None, None) => match (&profile.token, &profile.token_file) {
                (Some(token), _) => Some(token.clone()),
                (None, Some(file)) => Some(read_token(file)?),
                (None, None) => None,
            },
        };
        Ok(Self {
            gateway: options
                .gateway
                .clone()
                .or(profile.gateway)
                .unwrap_or_else(|| DEFAULT_GATEWAY.to_owned()),
            token,
            ca_cert: options.ca_cert.clone().or(profile.ca_cert),
            tls_server_name: options.tls_server_name.clone().or(profile.tls_server_name),
            timeout: Duration::from_secs(options.timeout.max(1)),
        })
    }

    /// A unary request that gives up after `--timeout`.
    pub fn unary<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Whether a token was given.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// A connected channel to the gateway.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let mut endpoint = Endpoint::from_shared(self.gateway.clone())
            .map_err(|_| usage_error(format!("--gateway {:?} is not a URL", self.gateway)))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if self.gateway.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(file) = &self.ca_cert {
                let pem = std::fs::read(file)
                    .map_err(|e| usage_error(format!("--ca-cert {}: {e}", file.display())))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            if let Some(name) = &self.tls_server_name {
                tls = tls.domain_name(name.clone());
            }
            endpoint = endpoint.tls_config(tls).context("TLS settings")?;
        } else if self.ca_cert.is_some() || self.tls_server_name.is_some() {
            usage!("--ca-cert and --tls-server-name need an https:// gateway");
        }
        endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to the gateway at {}", self.gateway))
    }

    /// A channel that sends the token on every call.
    pub async fn authorized(&self) -> anyhow::Result<InterceptedService<Channel, Bearer>> {
        let Some(token) = &self.token else {
            usage!(
                "this command needs a token: --token, --token-file, CRMCTL_TOKEN or the profile's token_file"
            );
        };
        let header = AsciiMetadataValue::try_from(format!("Bearer {}", token.trim()))
            .map_err(|_| usage_error("the token has characters a header cannot carry".into()))?;
        Ok(InterceptedService::new(
            self.channel().await?,
            Bearer(header),
        ))
    }
}

/// Puts `authorization: Bearer <token>` on each call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

fn usage_error(message: String) -> anyhow::Error {
    anyhow::Error::new(crate::exit::Usage(message))
}

fn read_token(file: &std::path::Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(file) {
        Ok(token) => Ok(token.trim().to_owned()),
        Err(error) => usage!("token file {}: {error}", file.display()),
    }
}

/// The chosen profile; empty when there is no config file (unless one was
/// named, or a profile other than `default` was asked for).
fn read_profile(options: &Options) -> anyhow::Result<Profile> {
    let (file, named) = match &options.config {
        Some(file) => (file.clone(), true),
        None => (default_config_file(), false),
    };
    if !file.exists() {
        if named || options.profile != "default" {
            usage!(
                "config file {} does not exist (needed for --profile {})",
                file.display(),
                options.profile
            );
        }
        return Ok(Profile::default());
    }
    let config = config::Config::builder()
        .add_source(config::File::from(file.as_path()).format(config::FileFormat::Toml))
        .build()
        .map_err(|e| usage_error(format!("config file {}: {e}", file.display())))?;
    match config.get::<Profile>(&format!("profiles.{}", options.profile)) {
        Ok(profile) => Ok(profile),
        Err(config::ConfigError::NotFound(_)) if options.profile == "default" => {
            Ok(Profile::default())
        }
        Err(error) => usage!(
            "profile {:?} in {}: {error}",
            options.profile,
            file.display()
        ),
    }
}

/// `$XDG_CONFIG_HOME/crmctl/config.toml`, else `~/.config/crmctl/config.toml`.
fn default_config_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_default();
    base.join("crmctl").join("config.toml")
}
