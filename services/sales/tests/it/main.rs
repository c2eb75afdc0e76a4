//! Integration tests of the sales service: the real sales and contacts
//! servers on free ports over throwaway databases (SQLite, and PostgreSQL
//! when one answers), called like any client would.

mod support;

mod audit;
mod bad_input;
mod consumer;
mod feed;
mod leads;
mod migration;
mod pipelines;
mod revenue;
mod statements;
