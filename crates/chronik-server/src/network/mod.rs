//! The network layer: accepts TCP connections on the configured `listener`s (`server`, within
//! `connection_limits`) and turns
//! each into a stream of request frames (`frame_reader`, bodies from the shared
//! `request_memory`) whose responses go back in request order (`connection`). It knows frames,
//! not APIs. `client` is the other direction: this broker's own requests to another broker.

pub mod client;
pub mod connection;
pub mod connection_limits;
pub mod frame_reader;
pub mod listener;
pub mod request_bounds;
pub mod request_memory;
pub mod server;

pub use server::serve;
