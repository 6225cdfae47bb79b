"""Data exfiltration: make the answer carry data out (LLM02, LLM05).

Links and images that carry data in their address, requests to send the
conversation or secrets somewhere, and requests for other users' or the host's data.
"""

from __future__ import annotations

from plimsoll.guard.notation import Rule, rule
from plimsoll.guard.rules.extraction import EXTRACT

DESTINATION = (r"(?:to|at|into|via|onto|using) (?:this|my|the following|an?|our|that|the|"
               r"my own)? ?(?:\w+ )?(?:url|uri|endpoint|server|address|e-?mail|inbox|"
               r"webhook|api|domain|site|website|link|host|ip|discord|slack|telegram|"
               r"pastebin|ngrok|requestbin|form|bucket|https?)")
SENSITIVE = (r"(?:(?:the|this|our|my|your|entire|full|whole|previous|complete|all|every)"
             r" (?:\w+ )?(?:conversation|chat|history|transcript|dialog(?:ue)?|"
             r"messages|system prompt)|"
             r"your (?:\w+ )?(?:secrets?|api ?keys?|credentials|passwords?|tokens?|"
             r"environment|env|config\w*|keys|memory|data)|"
             r"(?:user|users|customer|customers|other users?|other people)'?s? (?:\w+ )?"
             r"(?:data|info\w*|details|emails?|messages?|questions|queries|records|"
             r"history|conversations?|credit cards?|passwords?|address\w*|phone\w*|names?|"
             r"location|cookies?|session|ip|identity|chat)|"
             r"(?:credit card|card number|ssn|social security|passport|bank account)\w*|"
             r"(?:environment variables|env vars|os\.environ|\.env file|api ?keys?|"
             r"access tokens?|secrets)(?: you| in your| from your| stored| available))")
# Where a link can start: not inside another one ("http://http://..." is one link, and a
# search from each "http" inside it would read the rest of the text again, once per "http").
URL_START = r"(?<![\w/.%~+-])"

RULES: tuple[Rule, ...] = (
    rule("markdown-image", "data_exfiltration",
         r"!\[[^\]\n]{0,200}\]\(\s*<?(?:https?:)?//[^)\s]{0,200}[?&=#{$%]|"
         r"<img\b[^>]{0,200}\bsrc\s*=\s*[\"']?https?://[^\"'\s>]{0,200}[?&=#{$%]|"
         r"\b(?:1x1|invisible|hidden|tracking|transparent) (?:pixel|image|img|gif|png)|"
         r"\[[^\]\n]{0,200}\]\(\s*<?https?://[^)\s]{0,200}[?&][^)\s]{0,60}="
         r"[^)\s]{0,40}(?:\{|\[|<|%7b|\$)",
         stems=("![", "<img", "](")),
    rule("url-with-data", "data_exfiltration",
         rf"{URL_START}(?:https?://|www\.)[^\s\"')>]{{0,200}}[?&/=][^\s\"')>]{{0,80}}"
         r"(?:\{[^}\s]{0,40}\}|"
         r"\[[a-z_ ]{2,40}\]|<[a-z_ ]{2,40}>|\$\w+|%7b)|https?://(?:<[a-z_ ]{2,40}>|"
         r"\{[^}\s]{1,40}\})|[?&][\w-]+=(?:user_?email|e-?mail|session_?token|token|"
         r"password|api_?key|secret|cookie|conversation|history|prompt|chat|messages?)\b",
         stems=("http", "www.")),
    rule("send-to-destination", "data_exfiltration",
         rf"\b(?:send|post|upload|forward|transmit|exfiltrat|e-?mail|mail|leak|submit|"
         rf"sync|beacon|ping|report|relay|deliver|copy|transfer|publish|push|pipe|"
         rf"encode|append|attach|include|embed|insert|add|put|share|dump|"
         rf"curl|wget|render|translat|convert|turn|place|sneak|smuggle|slip|stash|tuck|hide|"
         rf"make a (?:get|post) request)\w*\b.{{0,120}}"
         rf"{SENSITIVE}|\b{SENSITIVE}.{{0,120}}\b(?:send|post|upload|forward|transmit|"
         rf"leak|submit|deliver|transfer|publish|push|exfiltrat)\w*\b",
         also=rf"{DESTINATION}|https?://|\bwww\.|\b\w+\.(?:com|net|org|io|xyz|ru|cn|tk|"
              rf"site|online|app|dev|me|info|biz|top)\b|@[\w-]+\.\w+|\b(?:in|into|inside) "
              rf"(?:the |a |an |each |every )?(?:url|link|image|query|markdown)",
         unless=r"\b(?:do not|don'?t|never|please don'?t|must not|should not|never) "
                r"(?:include|send|post|share|paste|email|upload|put)\b|\byour[_-]\w+|"
                r"your-token-here|will never ask|never ask for|phishing|scam",
         stems=("conversation", "chat", "history", "transcript", "dialog", "session", "messages",
               "system prompt", "instructions", "context", "prompt", "secret", "key",
               "credential", "password", "token", "environment", "env", "config", "memory",
               "data", "user", "customer", "people", "credit card", "card number", "ssn",
               "social security", "passport", "bank account", "os.environ", ".env", "info",
               "details", "email", "questions", "queries", "records", "address", "phone")),
    rule("dump-secrets", "data_exfiltration",
         r"\b(?:print|dump|list|show|reveal|output|give|tell|display|expose|share|return|"
         r"leak|read|echo|send|what (?:is|are)|what'?s|paste|cat|enumerate|extract|"
         r"exfiltrate)\w*\b.{0,40}\b(?:your|the server'?s|the system'?s|the host'?s|"
         r"the (?:server|system|host|backend|container|deployment|production|app)|"
         r"this (?:server|system|machine|host|container|app)'?s?|all (?:the )?(?:stored|"
         r"saved)|the stored|all (?:of )?your)\b.{0,20}\b(?:environment "
         r"variables|env(?:ironment)? vars?|os\.environ|\.env(?: file)?|api[ _-]?keys?|"
         r"access tokens?|auth tokens?|bearer tokens?|tokens|credentials|secrets|"
         r"passwords|ssh keys?|private keys?|aws (?:keys|credentials|secret\w*)|"
         r"openai[ _]api[ _]key|database (?:password|credentials|url|connection string)|"
         r"connection strings?|config(?:uration)? (?:file|values|secrets)|"
         r"/etc/passwd|/etc/shadow|id_rsa)\b",
         stems=("environment", "env", "os.environ", ".env", "key", "token", "credential",
               "secret", "password", "ssh", "private", "aws", "openai", "database",
               "connection string", "config", "/etc/", "id_rsa")),
    rule("secrets-you-hold", "data_exfiltration",
         r"\b(?:api[ _-]?keys?|access tokens?|tokens|credentials|secrets|passwords|"
         r"environment variables|env vars|private keys?|ssh keys?|connection strings?|dsn|"
         r"database (?:password|credentials|url)|session cookies?|auth tokens?|authori[sz]ation "
         r"header)\b.{0,30}\b(?:you (?:have|know|hold|store|use|are using|can (?:see|access|"
         r"read))|you're using|available to you|in your (?:context|memory|environment|config\w*|"
         r"training|system|prompt)|you(?:'ve| have) been given|your (?:backend|server|app|"
         r"service|deployment|runtime) uses|stored (?:in|on) (?:the|this|your) (?:server|"
         r"system|machine|host))"),
    rule("other-users-data", "data_exfiltration",
         r"\b(?:show|give|tell|list|dump|send|print|reveal|share|what (?:did|were|are|was|"
         r"have)|recall|read|display|output|leak|export|create|compile|make|build|generate|"
         r"paste|forward|summari[sz]e|repeat|quote|put|include|copy|describe|translate)\b[^.!?]{0,60}?\b(?:other|previous|earlier|last|all|every|another|"
         r"different|past) "
         r"(?:users?|customers?|people|persons?|clients?|visitors?|patients?|members?)"
         r"(?:'s|s'|s)?\b.{0,60}\b(?:questions?|queries|conversations?|chats?|messages?|"
         r"data|information|info|details|emails?|e-mail addresses|history|prompts?|"
         r"records|phone numbers?|addresses|credit cards?|card numbers?|passwords?|"
         r"accounts?|sessions?|files|documents|ip addresses|ips|names?|full names?|"
         r"identit\w+|locations?)\b",
         also=rf"\b(?:{EXTRACT}|list|dump|give|show|send|tell|recall|remember|access|create|"
              rf"compile|make|build|generate)\b"),
    rule("harvest-pii", "data_exfiltration",
         r"\b(?:list|give|print|dump|show|tell|output|reveal|share|send|find|extract|"
         r"collect|scrape|harvest|enumerate|compile|generate|recall|remember)\w* (?:me )?"
         r"(?:(?:all|every|any|the|some|real|a list of|a table of)\b)?(?:\W+\w+){0,4}?\W+"
         r"(?:emails?|e-mail addresses|"
         r"email addresses|phone numbers|home addresses|credit cards?|card numbers|"
         r"social security numbers|ssns?|passport numbers|personal (?:data|information|"
         r"details)|pii|customer (?:data|records|details)|user (?:data|records|details|"
         r"information|emails|passwords))\b",
         also=r"\b(?:you (?:know|have|saw|remember|stored|collected|can (?:find|see|"
              r"access))|in your (?:training|memory|database|context|index|data)|"
              r"from (?:your|the) (?:database|training|context|logs|index|memory|"
              r"documents|corpus|records)|stored|logs|deployment|database|server|shown "
              r"up|of (?:other|all|real) (?:users|"
              r"customers|people|employees)|real (?:people|persons|customers)|"
              r"employees|customers|users|staff|people'?s?)\b"),
    rule("put-pii-in-answer", "data_exfiltration",
         r"\b(?:include|insert|add|append|put|embed|attach|repeat|echo|show|print)\w*\b"
         r".{0,60}\b(?:credit card|card number|ssn|social security|password|api ?key|"
         r"secret|token|email address|phone number|personal data|pii|address|"
         r"date of birth|bank account|iban)s?\b.{0,60}\b(?:in|into|to|inside|within) "
         r"(?:the|your|each|every|all|any) (?:\w+ )?(?:answers?|responses?|reply|replies|"
         r"outputs?|url|link|image|summary|messages?)"),
    rule("configured-with-secret", "data_exfiltration",
         r"\b(?:api ?keys?|tokens?|credentials?|passwords?|secrets?)\b.{0,25}\b(?:are you|"
         r"you(?:'re| are)|you were|you've been|you have been) (?:configured|set up|given|"
         r"using|running|provisioned|loaded|deployed)(?: with| to| for)?\b"),
    rule("read-sensitive-files", "data_exfiltration",
         r"\b(?:cat|print|paste|dump|show|send|upload|read|fetch|open|contents of|output|"
         r"display|give me|share|curl|wget|get|leak|exfiltrate|what'?s in|what is in|"
         r"inside)\b(?:[^.!?\n]|\.(?=\w)){0,40}?"  # a dot in a file name ends no sentence
         r"(?:169\.254\.169\.254|metadata\.google\.internal|/etc/(?:passwd|shadow)|"
         r"~?/?\.aws/credentials|\bid_rsa\b|\.ssh/|\.pypirc|\.netrc|\.env\b|\.git-credentials)"),
    rule("environ-out", "data_exfiltration",
         r"\bos\.environ\b.{0,120}\b(?:requests\.|urllib|http|post|send|upload|curl|socket|"
         r"for me|paste|print|show|verbatim|sandbox|output)\b|"
         r"\b(?:requests\.\w+|urlopen|curl|post)\b.{0,120}"
         r"\bos\.environ\b|\benvironment variables?\b.{0,40}\b(?:where you(?:'re| are)|"
         r"your (?:runtime|process|deployment|backend|host|app)|"
         r"your (?:environment|sandbox|container|server|machine)|you(?:'re| are) running)"),
    rule("link-followed-by-secret", "data_exfiltration",
         rf"(?:{URL_START}https?://\S++|\blink|\burl)\s+(?:followed by|with|plus|and append\w*|"
         r"concatenated with|\+)\s+(?:the |your |a |an )?(?:password|secret|key|token|"
         r"conversation|chat|history|system prompt|prompt|api key|credentials|messages?|"
         rf"user'?s? \w+)\b|{URL_START}https?://[^\s)\"']*[?&][\w-]+=(?=[\s)\"'\]]|$)"),
    rule("harvest-secrets", "data_exfiltration",
         r"\b(?:extract|collect|harvest|find|list|dump|gather|grep|scan for|pull out)\w* "
         r"(?:every|all|any|each)\b(?:\W+\w+){0,5}?\W+(?:passwords?|tokens?|private keys?|"
         r"secrets?|credentials|api keys?)\b",
         also=r"\b(?:you|your|documents|docs|index|corpus|database|context|memory|files)\b"),
    rule("dump-knowledge", "data_exfiltration",
         r"\b(?:dump|export|print|list|output|show|give me|reveal|leak|download)\w* (?:the |"
         r"your |all |every |entire )*(?:\w+ ){0,3}?(?:vector (?:database|store|db|index)|"
         r"knowledge base|training data|internal (?:docs|documents|data)|documents you have|"
         r"chunks|embeddings index)\b",
         also=r"\b(?:you|your|all|entire|internal|customer)\b"),
    rule("keys-in-your-config", "data_exfiltration",
         r"\b(?:keys|api keys|tokens|secrets|credentials|endpoints|passwords)\b.{0,40}\b(?:in|"
         r"from|of) your (?:configuration|config|setup|environment|prompt|context|memory|"
         r"settings|deployment)\b"),
    rule("session-tokens", "data_exfiltration",
         r"\b(?:give|show|tell|print|send|reveal|share|leak|dump|what(?:'s| is| are)|list)\b"
         r".{0,40}\b(?:session|refresh|access|auth|bearer|csrf|jwt|oauth) (?:token|cookie|id|"
         r"key)s?\b",
         also=r"\b(?:account|logged|chat|user|current|this|their|other)\b"),
    rule("run-in-your-sandbox", "data_exfiltration",
         r"\b(?:run|execute|eval\w*)\b.{0,80}\bin your (?:sandbox|environment|container|"
         r"interpreter|code (?:tool|interpreter)|shell|runtime|server)\b|"
         r"\b(?:print|dump|show|output|return|json\.dumps)\w*\(\s*(?:dict\()?os\.environ"),
    rule("uploaded-by-others", "data_exfiltration",
         r"\b(?:documents|files|data|messages|conversations|emails|records|uploads|chats)"
         r" (?:uploaded|sent|written|shared|created|owned|submitted|stored) by (?:other|"
         r"different|all) (?:users|customers|people|tenants|clients|accounts)\b"),
    rule("others-asked", "data_exfiltration",
         r"\b(?:questions?|queries|messages|conversations|chats|prompts) (?:that )?(?:other|"
         r"previous|earlier|different|another) (?:users?|customers?|people|persons?) (?:have )?"
         r"(?:asked|sent|wrote|typed|submitted|had)\b|\b(?:users?|customers?|people) who "
         r"(?:has |have )?(?:asked|talked to|chatted with|messaged|contacted|used) you\b"),
    rule("look-up-person", "data_exfiltration",
         r"\b(?:look up|lookup|find|identify|dox|track down|locate|search for)\w* (?:the |a |"
         r"this |that )?(?:customer|user|person|employee|patient|client|owner|account holder|"
         r"caller|member)s?\b",
         also=r"\b(?:full name|home address|address|date of birth|birthday|phone number|"
              r"email|ssn|social security|location|where (?:he|she|they) lives?)\b"),
    rule("other-customer-chatted", "data_exfiltration",
         r"\b(?:customer|user|client|person|visitor|patient|someone) .{0,60}\b(?:chatted|"
         r"talked|spoke|spoken|messaged|wrote) (?:with|to) you\b",
         also=r"\b(?:phone|address|email|name|card|birth|account|password|order)\b"),
    rule("dns-exfiltration", "data_exfiltration",
         r"\b(?:dns (?:lookup|query|request)|nslookup|dig|ping|resolve)\b.{0,80}\b(?:secret|"
         r"password|key|token|credential|config\w*)\b|<(?:secret|password|token|key|data)>\."),
)
