//! Compiles every proto of the suite once, for every service and the gateway,
//! with a vendored protoc so a fresh machine needs none installed.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "crm/common/v1/common.proto",
    "crm/events/v1/events.proto",
    "crm/audit/v1/audit.proto",
    "crm/contacts/v1/contacts.proto",
    "crm/sales/v1/sales.proto",
    "crm/support/v1/support.proto",
    "crm/marketing/v1/marketing.proto",
    "crm/reporting/v1/reporting.proto",
    "crm/gateway/v1/gateway.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY of intent: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe_set_protoc(&protoc);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut prost_config = prost_build::Config::new();
    // Message types implement prost::Name, so events can pack them into Any.
    prost_config.enable_type_names();
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("crm_descriptor.bin"))
        // Undecodable requests are the client's mistake: INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::codec::StrictProstCodec")
        .compile_with_config(prost_config, PROTOS, &["."])?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}

#[allow(unsafe_code)]
fn unsafe_set_protoc(path: &std::path::Path) {
    // Edition 2024 marks set_var unsafe because other threads may read the
    // environment; a build script has no other threads at this point.
    unsafe { env::set_var("PROTOC", path) };
}
