//! Integration tests of the marketing service: the real marketing, sales
//! and contacts servers on free ports over throwaway databases (SQLite, and
//! PostgreSQL when one answers; under CI it must), sending to a real SMTP
//! server on loopback (aiosmtpd), called like any client would.

mod harness;

mod ab_tests;
mod attribution;
mod campaigns;
mod feed;
mod journeys;
mod refusals;
mod statements;
