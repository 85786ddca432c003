//! The database schema, all of it: the journal, the tables derived from it, and the
//! accounts kept beside it. The journal core applies these steps when it opens a
//! database; the rules that fill the derived tables are elsewhere (`rules`).

/// Schema steps; `PRAGMA user_version` counts how many have been applied. Append new
/// steps, never edit a released one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the journal and the first derived tables.
    "CREATE TABLE journal (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        kind TEXT NOT NULL,
        author TEXT NOT NULL,
        payload TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    -- Guards against a careless hand, not against tampering: the hash chain is what
    -- makes tampering visible.
    CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
        BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
    CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
        BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
    CREATE TABLE members (
        name TEXT PRIMARY KEY,
        roles TEXT NOT NULL,
        joined_seq INTEGER NOT NULL REFERENCES journal(seq)
    );
    CREATE TABLE plans (
        seq INTEGER PRIMARY KEY REFERENCES journal(seq),
        adopted_at TEXT NOT NULL,
        plan TEXT NOT NULL,
        decision TEXT NOT NULL
    );",
    // 2: accounts (password hashes, API tokens, sessions), beside the journal; not
    // derived from it, so a rebuild leaves them alone (see `accounts`).
    ACCOUNTS,
    // 3: the contribution ledger: parameters, contributions, attestations, balances,
    // totals and transfers.
    CONTRIBUTION_LEDGER,
    // 4: API tokens that expire, and when each was last used.
    "ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
     ALTER TABLE api_tokens ADD COLUMN last_used_at TEXT;",
    // 5: idempotency keys of requests that recorded an entry (see `idempotency`).
    IDEMPOTENCY,
    // 6: the planning board: intents, commitments, and the contributions that
    // fulfil them.
    PLANNING,
    // 7: the entries of assemblies drawn by lot. Their state is rebuilt from the
    // entries themselves (`rules::sortition`); this table only lets a journal cut
    // off after one of them be noticed, as the other derived tables do.
    "CREATE TABLE sortition_entries (
        seq INTEGER PRIMARY KEY REFERENCES journal(seq),
        kind TEXT NOT NULL
    );",
    // 8: each member's saved interests on the planning board and when they last
    // looked at it; preferences beside the journal, not derived from it (see
    // `interests`).
    "CREATE TABLE plan_interests (
        member TEXT NOT NULL,
        class TEXT NOT NULL,
        PRIMARY KEY (member, class)
    );
    CREATE TABLE plan_seen (
        member TEXT PRIMARY KEY,
        seen_at TEXT NOT NULL
    );",
    // 9: the intent a transfer pays for, if it names one (goods).
    "ALTER TABLE transfers ADD COLUMN intent INTEGER REFERENCES intents(id);
     CREATE INDEX transfers_intent ON transfers (intent);",
    // 10: the device a repair need opened by the node is about.
    "ALTER TABLE intents ADD COLUMN device TEXT;",
    // 11: reads of a household's readings under a consent grant; kept beside the
    // journal, not derived from it (see `consent`).
    "CREATE TABLE consent_access_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        household TEXT NOT NULL,
        grant_seq INTEGER NOT NULL,
        reader TEXT NOT NULL,
        what TEXT NOT NULL,
        meters TEXT NOT NULL,
        range_from TEXT,
        range_to TEXT
    );
    CREATE INDEX consent_access_log_household ON consent_access_log (household, id);
    -- The consent entries. Their state is rebuilt from the entries themselves
    -- (`consent`); this table only lets a journal cut off after one of them (a
    -- revocation deleted, say) be noticed, as the other derived tables do.
    CREATE TABLE consent_entries (
        seq INTEGER PRIMARY KEY REFERENCES journal(seq),
        kind TEXT NOT NULL
    );",
    // 12: the node's certification of a load shifted into one of its surplus
    // offers, one per commitment.
    "ALTER TABLE commitments ADD COLUMN certified_seq INTEGER REFERENCES journal(seq);",
];

const PLANNING: &str = "
    CREATE TABLE intents (
        id INTEGER PRIMARY KEY REFERENCES journal(seq),
        author TEXT NOT NULL,
        direction TEXT NOT NULL,
        action TEXT NOT NULL,
        class TEXT NOT NULL,
        centi_quantity INTEGER NOT NULL,
        unit TEXT NOT NULL,
        window_start TEXT,
        window_end TEXT,
        expires_at TEXT,
        description TEXT NOT NULL,
        visibility TEXT NOT NULL,
        collective INTEGER NOT NULL,
        committed_centi INTEGER NOT NULL,
        fulfilled_centi INTEGER NOT NULL,
        closed_seq INTEGER REFERENCES journal(seq)
    );
    CREATE INDEX intents_class ON intents (class, direction);
    CREATE TABLE commitments (
        id INTEGER PRIMARY KEY REFERENCES journal(seq),
        intent INTEGER NOT NULL REFERENCES intents(id),
        provider TEXT NOT NULL,
        receiver TEXT NOT NULL,
        proposed_by TEXT NOT NULL,
        centi_quantity INTEGER NOT NULL,
        note TEXT NOT NULL,
        accepted_seq INTEGER REFERENCES journal(seq),
        released_seq INTEGER REFERENCES journal(seq),
        fulfilled_centi INTEGER NOT NULL
    );
    CREATE INDEX commitments_intent ON commitments (intent);
    CREATE TABLE fulfilments (
        contribution INTEGER PRIMARY KEY REFERENCES contributions(id),
        commitment INTEGER NOT NULL REFERENCES commitments(id),
        fulfilment_seq INTEGER REFERENCES journal(seq),
        centi_quantity INTEGER NOT NULL
    );
    CREATE INDEX fulfilments_commitment ON fulfilments (commitment);";

const IDEMPOTENCY: &str = "
    CREATE TABLE idempotency_keys (
        member TEXT NOT NULL,
        key TEXT NOT NULL,
        request_sha256 TEXT NOT NULL,
        seq INTEGER NOT NULL REFERENCES journal(seq),
        created_at TEXT NOT NULL,
        PRIMARY KEY (member, key)
    );
    CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);";

const ACCOUNTS: &str = "
    CREATE TABLE credentials (
        member TEXT PRIMARY KEY COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        member TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE INDEX api_tokens_member ON api_tokens (member);
    CREATE TABLE sessions (
        id_sha256 TEXT PRIMARY KEY,
        member TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX sessions_member ON sessions (member);
    CREATE INDEX sessions_expires_at ON sessions (expires_at);";

const CONTRIBUTION_LEDGER: &str = "
    CREATE TABLE ledger_parameters (
        seq INTEGER PRIMARY KEY REFERENCES journal(seq),
        parameters TEXT NOT NULL,
        decision TEXT NOT NULL
    );
    CREATE TABLE contributions (
        id INTEGER PRIMARY KEY REFERENCES journal(seq),
        member TEXT NOT NULL,
        category TEXT NOT NULL,
        centihours INTEGER NOT NULL,
        date TEXT NOT NULL,
        description TEXT NOT NULL,
        state TEXT NOT NULL,
        approvals INTEGER NOT NULL,
        rejections INTEGER NOT NULL,
        minted_micro INTEGER,
        decided_seq INTEGER REFERENCES journal(seq)
    );
    CREATE INDEX contributions_decided_seq ON contributions (decided_seq);
    CREATE TABLE attestations (
        seq INTEGER PRIMARY KEY REFERENCES journal(seq),
        contribution INTEGER NOT NULL REFERENCES contributions(id),
        member TEXT NOT NULL,
        verdict TEXT NOT NULL,
        comment TEXT NOT NULL,
        UNIQUE (contribution, member)
    );
    CREATE TABLE balances (
        member TEXT PRIMARY KEY,
        balance_micro INTEGER NOT NULL,
        settled_at TEXT,
        last_seq INTEGER NOT NULL REFERENCES journal(seq)
    );
    CREATE TABLE ledger_totals (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        commons_micro INTEGER NOT NULL,
        minted_micro INTEGER NOT NULL,
        last_seq INTEGER NOT NULL REFERENCES journal(seq)
    );
    CREATE TABLE transfers (
        seq INTEGER PRIMARY KEY REFERENCES journal(seq),
        from_member TEXT NOT NULL,
        to_member TEXT NOT NULL,
        amount_micro INTEGER NOT NULL,
        memo TEXT NOT NULL
    );
    CREATE INDEX transfers_from_member ON transfers (from_member);
    CREATE INDEX transfers_to_member ON transfers (to_member);";

/// Empties every table derived from the journal, children first, before a rebuild
/// replays the journal into them. Accounts are not derived and stay.
pub(crate) const CLEAR_DERIVED: &str =
    "DELETE FROM consent_entries; DELETE FROM sortition_entries; DELETE FROM fulfilments; DELETE FROM transfers;
    DELETE FROM commitments; DELETE FROM intents; DELETE FROM attestations;
    DELETE FROM contributions; DELETE FROM balances; DELETE FROM ledger_totals;
    DELETE FROM ledger_parameters;
    DELETE FROM members; DELETE FROM plans;";

/// The columns of derived tables that refer to a journal entry by its `seq`: a value
/// past the journal's last entry means entries were cut off its end.
pub(crate) const ENTRY_REFERENCES: &[(&str, &str)] = &[
    ("members", "joined_seq"),
    ("plans", "seq"),
    ("ledger_parameters", "seq"),
    ("contributions", "id"),
    ("contributions", "decided_seq"),
    ("attestations", "seq"),
    ("transfers", "seq"),
    ("idempotency_keys", "seq"),
    ("balances", "last_seq"),
    ("ledger_totals", "last_seq"),
    ("intents", "id"),
    ("intents", "closed_seq"),
    ("commitments", "id"),
    ("commitments", "accepted_seq"),
    ("commitments", "released_seq"),
    ("commitments", "certified_seq"),
    ("fulfilments", "contribution"),
    ("fulfilments", "fulfilment_seq"),
    ("sortition_entries", "seq"),
    ("consent_entries", "seq"),
];
