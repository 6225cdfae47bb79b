package plimsollrequiredlabels

import rego.v1

import data.lib.plimsoll

policy := "PlimsollRequiredLabels"

problems contains sprintf("%v %v is missing the label %v", [plimsoll.kind, plimsoll.name, label]) if {
    some label in input.parameters.labels
    not plimsoll.labels[label]
}

problems contains msg if {
    value := plimsoll.labels["data-classification"]
    allowed := {v | some v in input.parameters.allowedClassifications}
    not value in allowed
    msg := sprintf("%v %v has data-classification %v, expected one of %v", [plimsoll.kind, plimsoll.name, value, sort(allowed)])
}

# A Job's pods carry the labels too: Gatekeeper sees them later, the owner sees it now.
problems contains sprintf("%v %v: its pod template is missing the label %v", [plimsoll.kind, plimsoll.name, label]) if {
    plimsoll.kind == "Job"
    some label in input.parameters.labels
    not plimsoll.obj.spec.template.metadata.labels[label]
}

violation contains {"msg": concat("", [msg, plimsoll.expired_note(policy)])} if {
    some msg in problems
    not plimsoll.exempt(policy)
}
