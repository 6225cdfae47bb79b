package plimsollallowedimages

import rego.v1

import data.lib.plimsoll

policy := "PlimsollAllowedImages"

from_allowed_registry(image) if {
    some registry in input.parameters.registries
    startswith(image, registry)
}

problems contains sprintf("%v %v: container %v uses %v, not from an allowed registry %v", [plimsoll.kind, plimsoll.name, c.name, c.image, input.parameters.registries]) if {
    some c in plimsoll.containers
    not from_allowed_registry(c.image)
}

problems contains sprintf("%v %v: container %v uses %v, not pinned by sha256 digest", [plimsoll.kind, plimsoll.name, c.name, c.image]) if {
    input.parameters.requireDigest == true
    some c in plimsoll.containers
    not regex.match(`@sha256:[a-f0-9]{64}$`, c.image)
}

violation contains {"msg": concat("", [msg, plimsoll.expired_note(policy)])} if {
    some msg in problems
    not plimsoll.exempt(policy)
}
