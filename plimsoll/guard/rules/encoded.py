"""Encoded payloads: decode a hidden instruction and follow it (LLM01).

Requests to decode, decipher or reverse a text and then do what it says (the
decoders in views.py uncover the payloads themselves).
"""

from __future__ import annotations

from plimsoll.guard.notation import Rule, rule

RULES: tuple[Rule, ...] = (
    rule("decode-and-follow", "encoded_payload",
         r"\b(?:decod\w*|decipher\w*|decrypt\w*|translat\w*|convert\w*|interpret\w*|"
         r"unscrambl\w*|revers\w*|read\w*|rot-?13|base64|un-?escape|pars\w*)\b (?:this|it|"
         r"that|these|the (?:following|message|text|string|payload|instruction|code|"
         r"cipher\w*|value|json|bytes)|below|above|what follows)\b.{0,80}"
         r"\b(?:and|then|,|;|after that|afterwards)\s*(?:then |also |just |simply )?"
         r"(?:follow|execute|obey|perform|carry out|act on|comply|do (?:it|that|what|as)|"
         r"treat (?:it|this|them) as|run (?:it|the (?:instruction|command))|apply (?:it|"
         r"the instruction)|respond to (?:it|the instruction)|answer (?:it|the "
         r"(?:question|instruction))|do the (?:task|instruction)|do what (?:it|the "
         r"\w+) says)\b(?!ed\b)",
         stems=("decod", "deciph", "decrypt", "translat", "convert", "interpret", "unscrambl",
               "revers", "read", "rot", "base64", "escape")),
    rule("decode-then-obey", "encoded_payload",
         r"\b(?:decod\w*|convert\w*|revers\w*|decipher\w*|translat\w*|unscrambl\w*|"
         r"interpret\w*|read\w*|pars\w*)\b[^!?\n]{0,100}?(?:\band\b|\bthen\b|,|->)\s*(?:then )?"
         r"(?:act on it|comply|obey|follow it|follow them|execute it|do it|do as it says|"
         r"do what it says|carry it out|follow the instructions?|follow what it says|run it)\b",
         stems=("decod", "convert", "revers", "deciph", "translat", "unscrambl", "interpret",
               "read", "pars")),
    rule("encoded-instruction", "encoded_payload",
         r"\b(?:base-?64|b64|hex(?:adecimal)?|rot-?13|caesar|morse|binary|ascii codes|"
         r"unicode escapes?|url-?encoded|leetspeak|l33t|reversed|backwards|pig latin|"
         r"atbash|cipher\w*|encoded|encrypted|obfuscated)\b.{0,80}\b(?:instruction|"
         r"command|message|payload|task|prompt|order|directive|request)s?\b",
         also=r"\b(?:follow|execute|obey|perform|carry out|comply|do (?:it|what|as)|"
              r"act on|decode|apply|answer|respond|secret|hidden|real)\b",
         stems=("base", "b64", "hex", "rot", "caesar", "morse", "binary", "ascii", "unicode",
               "url", "leet", "l33t", "revers", "backwards", "pig latin", "atbash", "cipher",
               "encod", "encrypt", "obfuscat")),
)
