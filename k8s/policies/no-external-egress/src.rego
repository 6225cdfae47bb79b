package plimsollnoexternalegress

import rego.v1

import data.lib.plimsoll

policy := "PlimsollNoExternalEgress"

internal_host(host) if {
    some suffix in input.parameters.internalSuffixes
    endswith(lower(host), suffix)
}

problems contains sprintf("Service %v is an ExternalName to %v, outside %v", [plimsoll.name, host, input.parameters.internalSuffixes]) if {
    plimsoll.kind == "Service"
    plimsoll.obj.spec.type == "ExternalName"
    host := plimsoll.obj.spec.externalName
    not internal_host(host)
}

problems contains sprintf("Service %v sets externalIPs %v", [plimsoll.name, plimsoll.obj.spec.externalIPs]) if {
    plimsoll.kind == "Service"
    count(plimsoll.obj.spec.externalIPs) > 0
}

# hostNetwork pods bypass NetworkPolicy entirely.
problems contains sprintf("%v %v uses hostNetwork, which NetworkPolicy cannot restrict", [plimsoll.kind, plimsoll.name]) if {
    some spec in plimsoll.pod_specs
    spec.hostNetwork == true
}

# A pod with its own resolvers would tunnel data out through DNS to outside servers.
problems contains sprintf("%v %v resolves names through %v instead of cluster DNS", [plimsoll.kind, plimsoll.name, server]) if {
    some spec in plimsoll.pod_specs
    some server in spec.dnsConfig.nameservers
    not server in {s | some s in input.parameters.allowedNameservers}
}

problems contains sprintf("%v %v: container %v sets %v to %v, an outside proxy", [plimsoll.kind, plimsoll.name, c.name, env.name, env.value]) if {
    some c in plimsoll.containers
    some env in c.env
    upper(env.name) in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
    env.value != ""
    host := split(split(trim_prefix(trim_prefix(env.value, "http://"), "https://"), "/")[0], ":")[0]
    not internal_host(host)
}

violation contains {"msg": concat("", [msg, plimsoll.expired_note(policy)])} if {
    some msg in problems
    not plimsoll.exempt(policy)
}
