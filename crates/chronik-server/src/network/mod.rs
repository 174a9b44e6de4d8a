//! The network layer: accepts TCP connections (`server`) and turns each into a stream of request
//! frames whose responses go back in request order (`connection`). It knows frames, not APIs.
//! `client` is the other direction: this broker's own requests to another broker.

pub mod client;
pub mod connection;
pub mod request_bounds;
pub mod server;

pub use server::serve;
