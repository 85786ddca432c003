//! Members and their roles, as the `members` table holds them. Recording a member
//! joining is in `rules::members`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::entry::ts_millis;

/// The author of the entries the node's command line records (`communalia user add`):
/// whoever runs it has the machine, not a member's account. No member may take it as
/// a name.
pub const COMMAND_LINE_AUTHOR: &str = "command-line";

/// The author of the entries the node writes of itself on the planning board (a
/// repair need when a device has been down for long): visibly the node's, not a
/// member's. No member may take it as a name.
pub const NODE_AUTHOR: &str = "node";

/// What a member may do on the node (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Resident,
    Assembly,
    Installer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Resident, Role::Assembly, Role::Installer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resident => "resident",
            Role::Assembly => "assembly",
            Role::Installer => "installer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}` (resident, assembly, installer or admin)"))
    }
}

/// A member as the `members` table holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// Sorted, each role once.
    pub roles: Vec<Role>,
    /// The `member_joined` entry that recorded them.
    pub joined_seq: i64,
    #[serde(with = "ts_millis")]
    pub joined_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("mayor".parse::<Role>().is_err());
    }
}
