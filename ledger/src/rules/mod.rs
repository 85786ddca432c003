//! The rules of each subject of the journal. For each kind of entry: its payload, the
//! checks a new one must pass, what it does to the derived tables (and must find
//! there), and the `Journal` calls that record and read it. Each records its entries
//! through the journal core (`journal::chain::append`) and applies them in the same
//! transaction; `dispatch` routes an entry to them by its kind.
//!
//! The contribution ledger's rules (`contributions`, `balances`, `parameters`) act on
//! a `state::LedgerState`: the derived tables (`sql::SqlState`) when recording and
//! rebuilding, or their image in memory when replaying (`replay`), so that the replay
//! that checks the tables cannot drift from the code that wrote them. Their payloads
//! and settlement rules are documented, for other programs too, in the crate docs
//! ("Entries and payloads").

pub(crate) mod assembly;
pub(crate) mod balances;
pub(crate) mod contributions;
pub(crate) mod members;
pub(crate) mod parameters;
pub(crate) mod planning;
pub(crate) mod sortition;
pub(crate) mod sql;
pub(crate) mod state;
