//! Rollout statuses and phases.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of a trace (a rollout). A trace with an open turn reads `RUNNING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutStatus {
    Running,
    Completed,
    Truncated,
    Error,
    Cancelled,
}

impl RolloutStatus {
    /// All statuses, in display order.
    pub const ALL: [RolloutStatus; 5] = [
        RolloutStatus::Running,
        RolloutStatus::Completed,
        RolloutStatus::Truncated,
        RolloutStatus::Error,
        RolloutStatus::Cancelled,
    ];

    /// The wire spelling, `COMPLETED` etc.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStatus::Running => "RUNNING",
            RolloutStatus::Completed => "COMPLETED",
            RolloutStatus::Truncated => "TRUNCATED",
            RolloutStatus::Error => "ERROR",
            RolloutStatus::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for RolloutStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RolloutStatus {
    type Err = String;

    /// Case-insensitive: `error`, `Error` and `ERROR` all parse.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RolloutStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}; expected one of RUNNING, COMPLETED, TRUNCATED, ERROR, CANCELLED"
                )
            })
    }
}

/// What a trace was logged for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Eval,
    Train,
    Prod,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Eval, Phase::Train, Phase::Prod];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Eval => "eval",
            Phase::Train => "train",
            Phase::Prod => "prod",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown phase {s:?}; expected one of eval, train, prod"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_parses_any_case() {
        for st in RolloutStatus::ALL {
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(json, format!("\"{}\"", st.as_str()));
            assert_eq!(
                st.as_str().to_lowercase().parse::<RolloutStatus>().unwrap(),
                st
            );
        }
        assert!(
            "done"
                .parse::<RolloutStatus>()
                .unwrap_err()
                .contains("COMPLETED")
        );
    }

    #[test]
    fn phase_parses() {
        assert_eq!("PROD".parse::<Phase>().unwrap(), Phase::Prod);
        assert!("dev".parse::<Phase>().is_err());
    }
}
