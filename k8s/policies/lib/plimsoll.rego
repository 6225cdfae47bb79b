# Shared helpers for every Plimsoll ConstraintTemplate (Rego v1 syntax; `import rego.v1`
# keeps Gatekeeper's parser and OPA 1.x on the same reading). Embedded as `libs` in
# each template.yaml; tools/k8s_check.py fails when a copy drifts from this file.
package lib.plimsoll

import rego.v1

obj := input.review.object

kind := obj.kind

name := n if {
    n := obj.metadata.name
} else := n if {
    n := obj.metadata.generateName
} else := ""

namespace := ns if {
    ns := obj.metadata.namespace
} else := ns if {
    ns := input.review.namespace
} else := ""

labels := object.get(obj, ["metadata", "labels"], {})

pod_kinds := {"Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController"}

pod_specs contains obj.spec if kind == "Pod"

pod_specs contains obj.spec.template.spec if kind in pod_kinds

pod_specs contains obj.spec.jobTemplate.spec.template.spec if kind == "CronJob"

containers contains c if {
    some spec in pod_specs
    some field in ["initContainers", "containers", "ephemeralContainers"]
    some c in spec[field]
}

# Exceptions: ConfigMaps rendered from k8s/exceptions/, synced into data.inventory by
# the Gatekeeper Config in k8s/policies/config.yaml.
exception_namespace := "gatekeeper-system"

exceptions contains cm if {
    some cm in data.inventory.namespace[exception_namespace].v1.ConfigMap
    cm.metadata.labels["plimsoll.io/policy-exception"] == "true"
}

name_matches(pattern) if pattern == name

name_matches(pattern) if {
    endswith(pattern, "*")
    startswith(name, trim_suffix(pattern, "*"))
}

applies(cm, policy) if {
    cm.data.policy == policy
    cm.data.namespace == namespace
    cm.data.kind == kind
    name_matches(cm.data.name)
}

# An exception stops applying at 00:00 UTC on its expiry date.
expiry_ns(cm) := time.parse_ns("2006-01-02", cm.data.expires)

unexpired(cm) if time.now_ns() < expiry_ns(cm)

exempt(policy) if {
    some cm in exceptions
    applies(cm, policy)
    unexpired(cm)
}

# A suffix for violation messages naming an expired exception, so the author knows why.
expired_note(policy) := note if {
    some cm in exceptions
    applies(cm, policy)
    not unexpired(cm)
    note := sprintf(" (exception %v expired on %v)", [cm.metadata.name, cm.data.expires])
} else := ""
