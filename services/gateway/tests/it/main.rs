//! End-to-end tests of the gateway: the real contacts service and the real
//! gateway on free ports, called like any client would, through the gateway.

mod support;

mod fairness;
mod limits;
mod matrix;
mod passthrough;
mod resilience;
mod surface;
