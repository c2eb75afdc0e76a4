//! The support rules, free of SQL and protobuf: what a valid ticket, comment,
//! queue, agent and routing rule is; how a ticket's status moves; how a new
//! ticket's agent is picked; how inbound mail reads; business-hours time and SLA clocks;
//! knowledge-base articles, their states and versions, and how a search or a
//! ticket's words become a query; live chats.

pub mod article;
pub mod calendar;
pub mod chat;
pub mod comment;
pub mod inbound_mail;
pub mod routing;
pub mod satisfaction;
pub mod sla;
pub mod ticket;
