//! Which upstream owns a call, from its gRPC path, and what kind of call it is,
//! from the descriptor sets compiled in.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use prost::Message;

use crate::upstream::Upstream;

/// Picks one upstream when several serve a package (every service has its
/// own `crm.events.v1` feed): `x-crm-upstream: contacts`.
pub const UPSTREAM_HEADER: &str = "x-crm-upstream";

/// Whether a method streams, per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodKind {
    /// The client sends a stream.
    pub client_streaming: bool,
    /// The server answers with a stream.
    pub server_streaming: bool,
}

impl MethodKind {
    /// One request, one response.
    pub fn is_unary(self) -> bool {
        !self.client_streaming && !self.server_streaming
    }
}

/// What the gateway knows about the suite's methods, from the descriptors.
pub struct Catalogue {
    /// `/pkg.Service/Method` to its kind.
    methods: HashMap<String, MethodKind>,
    /// Fully-qualified service names per package.
    services: HashMap<String, BTreeSet<String>>,
}

impl Catalogue {
    /// Reads the encoded `FileDescriptorSet`s.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Result<Self, prost::DecodeError> {
        let mut catalogue = Self {
            methods: HashMap::new(),
            services: HashMap::new(),
        };
        for encoded in sets {
            let set = prost_types::FileDescriptorSet::decode(*encoded)?;
            for file in set.file {
                let package = file.package().to_owned();
                for service in &file.service {
                    let full = format!("{package}.{}", service.name());
                    for method in &service.method {
                        catalogue.methods.insert(
                            format!("/{full}/{}", method.name()),
                            MethodKind {
                                client_streaming: method.client_streaming(),
                                server_streaming: method.server_streaming(),
                            },
                        );
                    }
                    catalogue
                        .services
                        .entry(package.clone())
                        .or_default()
                        .insert(full);
                }
            }
        }
        Ok(catalogue)
    }

    /// The kind of the method at `path`, if it is one the suite defines.
    pub fn method(&self, path: &str) -> Option<MethodKind> {
        self.methods.get(path).copied()
    }

    /// Every service the descriptors define in `package`.
    pub fn services_in(&self, package: &str) -> impl Iterator<Item = &str> {
        self.services
            .get(package)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

/// Why a call has nowhere to go.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The path is not `/package.Service/Method`, or no upstream owns the package.
    UnknownService(String),
    /// Several upstreams serve the package and the call did not pick one.
    Ambiguous {
        /// The package.
        package: String,
        /// The upstreams that serve it.
        candidates: Vec<String>,
    },
    /// The `x-crm-upstream` header names an upstream that does not serve the package.
    NotServedBy {
        /// The package.
        package: String,
        /// The upstream named.
        upstream: String,
    },
}

/// Packages to the upstreams that serve them.
pub struct RouteTable {
    by_package: HashMap<String, Vec<Arc<Upstream>>>,
}

impl RouteTable {
    /// A table over `upstreams`, each with the packages it owns.
    pub fn new(upstreams: &[(Arc<Upstream>, Vec<String>)]) -> Self {
        let mut by_package: HashMap<String, Vec<Arc<Upstream>>> = HashMap::new();
        for (upstream, packages) in upstreams {
            for package in packages {
                by_package
                    .entry(package.clone())
                    .or_default()
                    .push(upstream.clone());
            }
        }
        Self { by_package }
    }

    /// The upstream for a call to `path`; `chosen` is the `x-crm-upstream` header.
    pub fn route(&self, path: &str, chosen: Option<&str>) -> Result<&Arc<Upstream>, RouteError> {
        let unknown = || RouteError::UnknownService(path.to_owned());
        let package = package_of(path).ok_or_else(unknown)?;
        let owners = self.by_package.get(package).ok_or_else(unknown)?;
        match (owners.as_slice(), chosen) {
            (_, Some(name)) => {
                owners
                    .iter()
                    .find(|u| u.name() == name)
                    .ok_or_else(|| RouteError::NotServedBy {
                        package: package.to_owned(),
                        upstream: name.to_owned(),
                    })
            }
            ([only], None) => Ok(only),
            (_, None) => Err(RouteError::Ambiguous {
                package: package.to_owned(),
                candidates: owners.iter().map(|u| u.name().to_owned()).collect(),
            }),
        }
    }
}

/// `crm.contacts.v1` from `/crm.contacts.v1.ContactsService/GetContact`.
pub fn package_of(path: &str) -> Option<&str> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if method.is_empty() || method.contains('/') {
        return None;
    }
    let (package, _service) = service.rsplit_once('.')?;
    (!package.is_empty()).then_some(package)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_is_everything_before_the_service_name() {
        assert_eq!(
            package_of("/crm.contacts.v1.ContactsService/GetContact"),
            Some("crm.contacts.v1")
        );
        assert_eq!(package_of("/Service/Method"), None);
        assert_eq!(package_of("/crm.x.v1.S/"), None);
        assert_eq!(package_of("/crm.x.v1.S/a/b"), None);
        assert_eq!(package_of("crm.x.v1.S/M"), None);
    }

    #[test]
    fn the_catalogue_knows_every_method_and_its_kind() {
        let catalogue = Catalogue::from_descriptor_sets(&[crm_proto::FILE_DESCRIPTOR_SET]).unwrap();
        let import = catalogue
            .method("/crm.contacts.v1.ContactsService/ImportContacts")
            .unwrap();
        assert!(import.client_streaming && import.server_streaming);
        assert!(
            catalogue
                .method("/crm.contacts.v1.ContactsService/GetContact")
                .unwrap()
                .is_unary()
        );
        assert!(
            catalogue
                .services_in("crm.contacts.v1")
                .any(|s| s == "crm.contacts.v1.ContactsService")
        );
    }
}
