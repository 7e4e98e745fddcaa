//! The connection of a client command to Kestrel: the SDK's blocking [`KestrelClient`] for
//! `--url` and `--api-key`, and its errors turned into messages for people.
//!
//! Kestrel's own error message is printed as it is (`unknown field "stauts" at 1..7; did you mean
//! "status"?`): it already says what to fix. A connection failure names the URL and suggests
//! starting the server; a 401 says which flag or variable carries the key.

use std::time::Duration;

use caribou::{ClientError, Config, KestrelClient};

use crate::cli::ClientArgs;
use crate::config::env;

/// A page of 1000 traces with large metadata, on a busy disk: people wait for the answer, so be
/// generous rather than fail.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one Kestrel.
#[derive(Debug, Clone)]
pub struct Connection {
    client: KestrelClient,
    /// The base URL, for messages.
    url: String,
}

impl Connection {
    pub fn open(args: &ClientArgs) -> anyhow::Result<Connection> {
        let url = args.url.trim().trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!(
                "--url / {}: {url:?} is not an http URL; write it like http://127.0.0.1:8750",
                env::URL
            );
        }
        let config = Config {
            endpoint: Some(url.clone()),
            api_key: args.api_key.clone().filter(|k| !k.trim().is_empty()),
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            ..Config::default()
        };
        Ok(Connection {
            client: KestrelClient::from_config(&config),
            url,
        })
    }

    /// Runs one request, turning its error into a message for people.
    pub fn call<T>(
        &self,
        request: impl FnOnce(&KestrelClient) -> Result<T, ClientError>,
    ) -> anyhow::Result<T> {
        request(&self.client).map_err(|e| anyhow::anyhow!(self.explain(e)))
    }

    fn explain(&self, error: ClientError) -> String {
        match error {
            ClientError::Api {
                status: 401,
                message,
                ..
            } => format!(
                "{message} (pass the key with --api-key or {})",
                env::API_KEY
            ),
            ClientError::Api { message, .. } => message,
            ClientError::Transport(detail) => format!(
                "cannot reach Kestrel at {}: {detail}; is `kestrel serve` running? (set --url or {})",
                self.url,
                env::URL
            ),
            ClientError::Decode(detail) => format!(
                "unexpected answer from {} (is it a Kestrel of the same version?): {detail}",
                self.url
            ),
            ClientError::Disabled => format!("no Kestrel URL: set --url or {}", env::URL),
        }
    }
}
