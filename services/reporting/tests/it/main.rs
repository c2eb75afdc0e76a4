//! Integration tests of the reporting service: the real contacts, sales,
//! support, marketing and reporting servers on free ports over throwaway
//! databases (SQLite, and PostgreSQL when one answers; under CI it must),
//! a history made through the four sources' APIs, and reporting's answers
//! checked against values computed by hand from that history.

mod harness;
mod history;

mod catch_up;
mod erasure;
mod kpis;
mod rebuild;
mod refusals;
mod statements;
mod view;
