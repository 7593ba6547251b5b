//! Errors from the API server, said so that a person knows what to do:
//! a denied request names the verb, the resource, the namespace and who was
//! denied; an unreachable cluster says how to start one. Both are mistakes
//! the user can fix ([`crate::usage!`], exit code 2).

use crate::usage;
use std::fmt;

/// The cluster klab talks to, for messages.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// The API server's URL.
    pub url: String,
    /// The kubeconfig context, if one was used.
    pub context: Option<String>,
    /// The kubeconfig user of that context, or the pod's service account.
    pub user: Option<String>,
}

impl Cluster {
    fn context_note(&self) -> String {
        match &self.context {
            Some(c) => format!(" (context {c})"),
            None => String::new(),
        }
    }
}

/// One API call, for messages and tracing: `patch statefulsets/kafka in
/// namespace klab`.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub name: Option<&'a str>,
    pub namespace: &'a str,
}

impl fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(n) = self.name {
            write!(f, "/{n}")?;
        }
        write!(f, " in namespace {}", self.namespace)
    }
}

/// `User "system:serviceaccount:klab:klab-tuner" cannot ...` → the user.
fn identity_in(message: &str) -> Option<&str> {
    let rest = &message[message.find("User \"")? + 6..];
    Some(&rest[..rest.find('"')?])
}

/// How to grant the runner's Role to an identity.
fn grant_hint(who: &str, namespace: &str) -> String {
    let subject = match who.strip_prefix("system:serviceaccount:") {
        Some(sa) => format!("--serviceaccount={sa}"),
        None => format!("--user={who}"),
    };
    format!(
        "kubectl -n {namespace} create rolebinding klab-runner-access --role=klab-runner {subject}"
    )
}

/// The message for a 403 Forbidden.
fn forbidden(call: &Call, cluster: &Cluster, server_message: &str) -> String {
    let who = identity_in(server_message)
        .map(str::to_string)
        .or_else(|| cluster.user.clone())
        .unwrap_or_else(|| "your kubeconfig user".into());
    format!(
        "Kubernetes denied {who} permission to {call}{} (403 Forbidden: {server_message}). \
         klab needs what the Role klab-runner of manifests/rbac.yaml grants in that namespace; \
         apply the manifests (kubectl apply -k manifests) and bind the Role: {}",
        cluster.context_note(),
        grant_hint(&who, call.namespace)
    )
}

/// The message when the API server cannot be reached.
pub fn unreachable(cluster: &Cluster, detail: &str) -> String {
    format!(
        "cannot reach the Kubernetes API server at {}{}: {detail}. Is the cluster running? \
         `nix run .#demo -- --target k3d` creates a k3d cluster named klab, deploys klab into it \
         and runs this demo there (`k3d cluster start klab` restarts a stopped one); for another \
         cluster, pass --context",
        cluster.url,
        cluster.context_note()
    )
}

/// True when the error says the server was not reached at all (refused,
/// unresolvable, no route, connect timeout), as opposed to an answer.
fn is_unreachable(e: &kube::Error) -> bool {
    if matches!(e, kube::Error::Api(_)) {
        return false;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | TimedOut
                    | NotFound
                    | AddrNotAvailable
                    | HostUnreachable
                    | NetworkUnreachable
            ) {
                return true;
            }
        }
        let text = s.to_string();
        if [
            "Connection refused",
            "dns error",
            "tcp connect error",
            "No route to host",
            "deadline has elapsed",
            "connection timed out",
        ]
        .iter()
        .any(|w| text.contains(w))
        {
            return true;
        }
        src = s.source();
    }
    false
}

/// Every error of an API call goes through here.
pub fn explain(e: kube::Error, call: &Call, cluster: &Cluster) -> anyhow::Error {
    match &e {
        kube::Error::Api(s) if s.code == 403 => usage!("{}", forbidden(call, cluster, &s.message)),
        kube::Error::Api(s) if s.code == 401 => usage!(
            "the API server at {}{} does not accept klab's credentials (401 Unauthorized: {}); \
             renew them in your kubeconfig (for k3d: k3d kubeconfig merge klab)",
            cluster.url,
            cluster.context_note(),
            s.message
        ),
        _ if is_unreachable(&e) => usage!("{}", unreachable(cluster, &chain(&e))),
        _ => anyhow::Error::new(e).context(format!("{call} ({})", cluster.url)),
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn cluster() -> Cluster {
        Cluster {
            url: "https://127.0.0.1:6443".into(),
            context: Some("k3d-klab".into()),
            user: Some("admin@k3d-klab".into()),
        }
    }

    const CALL: Call = Call {
        verb: "create",
        resource: "pods",
        name: None,
        namespace: "klab",
    };

    /// [`explain`] of the API's answer `code` `reason` to [`CALL`].
    fn api_error(message: &str, reason: &str, code: u16) -> anyhow::Error {
        let status = Status::failure(message, reason).with_code(code).boxed();
        explain(kube::Error::Api(status), &CALL, &cluster())
    }

    #[test]
    fn forbidden_names_verb_resource_namespace_and_identity() {
        let msg = "pods is forbidden: User \"system:serviceaccount:klab:klab-tuner\" cannot create resource \"pods\" in API group \"\" in the namespace \"klab\"";
        let e = api_error(msg, "Forbidden", 403);
        assert!(crate::error::is_usage(&e));
        let m = e.to_string();
        assert!(
            m.starts_with("Kubernetes denied system:serviceaccount:klab:klab-tuner permission to create pods in namespace klab (context k3d-klab)"),
            "{m}"
        );
        assert!(m.contains("Role klab-runner"), "{m}");
        assert!(m.contains("--serviceaccount=klab:klab-tuner"), "{m}");
        // Without an identity in the message: the kubeconfig's user.
        let call = Call {
            verb: "patch",
            resource: "statefulsets",
            name: Some("kafka"),
            namespace: "labs",
        };
        let m = forbidden(&call, &cluster(), "denied");
        assert!(
            m.starts_with("Kubernetes denied admin@k3d-klab permission to patch statefulsets/kafka in namespace labs"),
            "{m}"
        );
        assert!(m.contains("--user=admin@k3d-klab"), "{m}");
    }

    #[test]
    fn other_api_errors_keep_the_call() {
        let e = api_error("boom", "InternalError", 500);
        assert!(!crate::error::is_usage(&e));
        assert!(
            format!("{e:#}").starts_with("create pods in namespace klab (https://127.0.0.1:6443)"),
            "{e:#}"
        );
        let e = api_error("bad cert", "Unauthorized", 401);
        assert!(crate::error::is_usage(&e));
        assert!(e.to_string().contains("401 Unauthorized"));
    }

    #[test]
    fn unreachable_says_how_to_start_a_cluster() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = kube::Error::Service(Box::new(io));
        assert!(is_unreachable(&e));
        let e = explain(e, &CALL, &cluster());
        assert!(crate::error::is_usage(&e));
        let m = e.to_string();
        assert!(m.starts_with("cannot reach the Kubernetes API server at https://127.0.0.1:6443 (context k3d-klab)"), "{m}");
        assert!(m.contains("nix run .#demo -- --target k3d"), "{m}");
        assert!(!is_unreachable(
            &kube::Error::LinesCodecMaxLineLengthExceeded
        ));
    }

    #[test]
    fn identity_parsing() {
        assert_eq!(identity_in("x User \"bob\" cannot y"), Some("bob"));
        assert_eq!(identity_in("no user here"), None);
        assert_eq!(identity_in("User \"unterminated"), None);
    }
}
