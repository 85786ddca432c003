//! The federation against real peers: NATS servers (Debian's `nats-server`, a
//! three-server JetStream cluster where replication is the point), an S3 server
//! (SeaweedFS), and a real browser for the region's page. Each test starts its own
//! servers on free loopback ports; they end with the test.

mod archive;
mod browser;
mod compact;
mod nats;
mod node;
mod partition;
mod publish;
mod reader;
mod region;
mod s3;
mod support;
mod week_hours;
mod witness;
