//! Integration tests of the support service.
