//! One file per command: arguments, then `exec`, which calls berthd once
//! (or follows a job) and prints the result.

pub mod apps;
pub mod catalog;
pub mod container;
pub mod exec;
pub mod image;
pub mod images;
pub mod info;
pub mod install;
pub mod login;
pub mod logs;
pub mod ps;
pub mod pull;
pub mod rmi;
pub mod run;
pub mod stats;
pub mod volume;
