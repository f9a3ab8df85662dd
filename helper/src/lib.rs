//! berthd: Berth's privileged helper.
//!
//! One module per concern, in the order data flows (see the README's map):
//! `reference` parses names, `registry` speaks the distribution protocol,
//! `content` stores blobs by digest, `layers` unpacks them safely, `images`
//! keeps image records in `state`, and `dbus` serves all of it on the bus.
//! Arrows point that way only: nothing below `dbus` knows about D-Bus.
//! `network` gives containers app networks (a bridge per app, network
//! namespaces, NAT, published ports); it knows nothing of containers.
//! `fsmode` is how every part makes its files and mounts root's alone (the
//! modes, atomic writes, `nosuid,nodev`).

pub mod apps;
pub mod cancel;
pub mod config;
pub mod containers;
pub mod content;
pub mod credentials;
pub mod dbus;
pub mod fsmode;
pub mod images;
pub mod layers;
pub mod ledger;
pub mod metrics;
pub mod network;
pub mod reference;
pub mod registry;
pub mod runtime;
pub mod state;
