//! Integration tests of the sales service: the real sales and contacts
//! servers on free ports over throwaway databases (SQLite, and PostgreSQL
//! when one answers), called like any client would.

#[macro_use]
extern crate crm_shared;

mod support;

mod bad_input;
mod feed;
mod leads;
mod pipelines;
mod revenue;
