//! Integration tests of the support service: the real support and contacts
//! servers on free ports over throwaway databases (SQLite, and PostgreSQL
//! when one answers; under CI it must), called like any client would.

mod harness;

mod articles;
mod chats;
mod comments;
mod email;
mod feed;
mod satisfaction;
mod sla;
mod statements;
mod tickets;
