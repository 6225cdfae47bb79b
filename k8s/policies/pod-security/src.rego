package plimsollpodsecurity

import rego.v1

import data.lib.plimsoll

policy := "PlimsollPodSecurity"

problems contains sprintf("%v %v: container %v is privileged", [plimsoll.kind, plimsoll.name, c.name]) if {
    some c in plimsoll.containers
    c.securityContext.privileged == true
}

problems contains sprintf("%v %v: container %v allows privilege escalation", [plimsoll.kind, plimsoll.name, c.name]) if {
    some c in plimsoll.containers
    c.securityContext.allowPrivilegeEscalation == true
}

problems contains sprintf("%v %v: container %v adds capability %v", [plimsoll.kind, plimsoll.name, c.name, cap]) if {
    some c in plimsoll.containers
    some cap in c.securityContext.capabilities.add
    upper(cap) in {"SYS_ADMIN", "NET_ADMIN", "ALL", "CAP_SYS_ADMIN", "NET_RAW", "SYS_PTRACE"}
}

problems contains sprintf("%v %v uses %v", [plimsoll.kind, plimsoll.name, field]) if {
    some spec in plimsoll.pod_specs
    some field in ["hostNetwork", "hostPID", "hostIPC"]
    spec[field] == true
}

problems contains sprintf("%v %v mounts the hostPath volume %v", [plimsoll.kind, plimsoll.name, v.name]) if {
    some spec in plimsoll.pod_specs
    some v in spec.volumes
    v.hostPath
}

violation contains {"msg": concat("", [msg, plimsoll.expired_note(policy)])} if {
    some msg in problems
    not plimsoll.exempt(policy)
}
