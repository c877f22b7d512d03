//! The fence-agent contract: `options` (the one option table), `stdin`/`argv` (input modes),
//! `validate`, `engine` (the action engine), `metadata` and `manual` (XML, man page, `-h`),
//! `log`, `error`, `secret`, and `run` (the only module that prints results and picks exit
//! codes). Nothing here knows SSH or IPMI.

pub mod abort;
pub mod action;
pub mod agent;
pub mod argv;
pub mod engine;
pub mod error;
pub mod log;
pub mod manual;
pub mod metadata;
pub mod options;
pub mod run;
pub mod secret;
pub mod stdin;
pub mod userfile;
pub mod validate;
