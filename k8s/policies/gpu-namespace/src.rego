package plimsollgpunamespace

import rego.v1

import data.lib.plimsoll

policy := "PlimsollGpuNamespace"

gpu_resources := {"nvidia.com/gpu"}

problems contains sprintf("%v %v: container %v asks for %v in namespace %v; GPUs only in %v", [plimsoll.kind, plimsoll.name, c.name, resource, plimsoll.namespace, input.parameters.gpuNamespaces]) if {
    some c in plimsoll.containers
    some section in ["requests", "limits"]
    some resource, _ in c.resources[section]
    resource in gpu_resources
    not plimsoll.namespace in {ns | some ns in input.parameters.gpuNamespaces}
}

violation contains {"msg": concat("", [msg, plimsoll.expired_note(policy)])} if {
    some msg in problems
    not plimsoll.exempt(policy)
}
