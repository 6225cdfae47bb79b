"""System prompt extraction: make the assistant disclose its instructions (LLM07).

Requests for the system prompt, the text before the conversation, the rules the
assistant runs under, or a secret it was given, whole, spelled out or encoded.
"""

from __future__ import annotations

from plimsoll.guard.notation import Rule, rule

EXTRACT = (r"(?:reveal\w*|show\w*|print\w*|display\w*|output\w*|repeat\w*|recit\w*|tell|"
           r"give|share|dump|leak|expose|disclos\w*|writ\w*|spell|list|paste|copy|echo|"
           r"translat\w*|summari[sz]\w*|paraphras\w*|encod\w*|state|provide|return|type|"
           r"read|quote|render|send|export|reproduc\w*|rephras\w*|rewrit\w*|describe|"
           r"explain|put|format|convert|what (?:is|are|was|were)|what'?s|whats|tell me about|"
           r"access|see|know|let me see|are there|do you have|emit|produce|surface)")
EXTRACT_COMMAND = (r"(?:reveal\w*|show\w*|print\w*|display\w*|output\w*|repeat\w*|recit\w*|"
                   r"tell|give|share|dump|leak|expose|disclos\w*|spell|paste|copy|echo|"
                   r"translat\w*|summari[sz]\w*|paraphras\w*|encod\w*|state|provide|return|"
                   r"quote|reproduc\w*|rephras\w*|rewrit\w*|emit|what (?:is|are|was|were)|"
                   r"what'?s|whats|write (?:out|down|back))")
SECRET_ADJ = (r"(?:system|initial|original|hidden|secret|internal|developer|pre|meta|"
              r"starting|opening|underlying|confidential|private|verbatim|exact|full|"
              r"complete|entire|first|base|core|real|actual|true|raw)")
PROMPT_NOUN = (r"(?:prompts?|instructions?|messages?|directives?|guidelines|rules|"
               r"programming|briefing|orders|initiali[sz]ation|configuration|config|"
               r"setup|context|preamble|policy|policies|constraints|persona|"
               r"guardrails|settings|text)")
SECRET_NOUN = (r"(?:password|passphrase|pass ?word|passcode|secret(?: (?:key|word|code|"
               r"phrase|token|value))?|access code|pin|magic word|code ?word|api ?key|"
               r"launch code|flag|key)")
NOT_SECRET_USE = (r"(?! (?:hash\w*|field|prompt|manager|strength|polic\w+|reset|file|input|"
                  r"argument|parameter|module|function|length|validation|salt|entry|"
                  r"attribute|option|dialog|widget|box|generator|hint|storage|check\w*|"
                  r"method|class|type|error|handling|handler|variable|based|protected|"
                  r"authentication|auth|masking|library|lib|in python|with python)\b)")

RULES: tuple[Rule, ...] = (
    rule("extract-multilingual", "system_prompt_extraction",
         r"\b(?:zeig\w*|gib|nenne|verrat\w*|wiederhol\w*|montre\w*|révèle\w*|revele\w*|"
         r"répète\w*|repete\w*|muestra\w*|revela\w*|repite\w*|mostra\w*|rivela\w*|"
         r"ripeti\w*|toon|herhaal|покажи|раскрой|повтори|выведи|recopi\w*|copie\w*|"
         r"affich\w*)"
         r"(?:\W+\w+){0,3}?\W+(?:system-?prompt\w*|systemanweisung\w*|anweisungen|"
         r"instructions|consignes|invite système|prompt (?:du )?système|instrucciones|"
         r"prompt del sistema|istruzioni|prompt di sistema|instruções|instrucoes|"
         r"message syst[èe]me|mensaje del sistema|messaggio di sistema|"
         r"message de configuration|instructions initiales|"
         r"prompt do sistema|instructies|systeemprompt|системн\w* (?:промпт|подсказк\w*|"
         r"инструкци\w*)|инструкци\w*|passwort|mot de passe|contraseña|contrasena|"
         r"password|senha|wachtwoord|пароль)\b"),
    rule("extract-system-prompt", "system_prompt_extraction",
         rf"\b{EXTRACT_COMMAND}\b(?:[^\w.?!]++\w+){{0,4}}?[^\w.?!]++(?:your|the|its|my|all|those|these|"
         rf"that|this|any|of|me|us|back|out|in)?(?:[^\w.?!]++\w+){{0,2}}?[^\w.?!]*+{SECRET_ADJ}[\s-]*"
         rf"(?:\w+[\s-]+)?{PROMPT_NOUN}\b",
         also=r"\b(?:system[\s-]*(?:prompt|message|instructions?)|your|initial (?:prompt|"
              r"instructions?)|original (?:prompt|instructions?)|hidden|secret|"
              r"confidential|internal (?:prompt|instructions?|rules|guidelines)|"
              r"developer (?:prompt|message|instructions?)|pre-?prompt|meta-?prompt|"
              r"you were (?:given|told)|verbatim|word for word|you (?:have|got|received))\b",
         unless=r"\b(?:must|should|will|shall|does|do) never (?:reveal|show|leak|disclose|"
                r"repeat)|\bthreat model\b",
         stems=("prompt", "instruction", "message", "directive", "guideline", "rule",
               "programming", "briefing", "order", "initiali", "config", "setup", "context",
               "preamble", "polic", "constraint", "persona", "guardrail", "setting", "text")),
    rule("extract-your-rules", "system_prompt_extraction",
         rf"\b{EXTRACT}\b.{{0,40}}\b(?:your|ur|yr) (?:\w+ ){{0,2}}?(?:prompts?|instructions?|"
         r"directives?|guidelines?|rules|programming|system message|configuration|"
         r"config|initiali[sz]ation|constraints|restrictions|guardrails|briefing|orders|"
         r"settings|setup|context|preamble|policies|persona|training data|first message|"
         r"secret|password|source code|hidden \w+|internal \w+)\b",
         stems=("your",)),
    rule("what-were-you-told", "system_prompt_extraction",
         r"\b(?:what|which|how)\b(?:\W+\w+){0,3}?\W+(?:were|are|have|had|did) you (?:been |"
         r"originally |initially |first |specifically |actually )?(?:told|instructed|"
         r"programmed|configured|prompted|set up|trained to|asked to|ordered|briefed|"
         r"given|designed to|meant to|not allowed|forbidden|built to|supposed to)\b"),
    rule("text-above", "system_prompt_extraction",
         r"\b(?:text|words|everything|all|content|contents|message|messages|lines?|"
         r"sentences?|characters|tokens|instructions|prompt|what(?:'s| is| was| has been| "
         r"came)?(?: written| said| stated| typed)?)\b (?:\w+ ){0,2}?(?:above|before|prior "
         r"to|preceding|precedes|preceded|earlier than|ahead of) (?:this|my|the (?:user|first|"
         r"current|conversation|chat)|here|that|these|our conversation|the start|everything)\b",
         also=rf"\b(?:{EXTRACT}|tell|what)\b",
         stems=("above", "before", "prior to", "preced", "earlier than", "ahead of")),
    rule("repeat-from-start", "system_prompt_extraction",
         r"\b(?:repeat|recite|print|output|echo|copy|reproduce|write out|return|spell out|"
         r"paste|show)\w* (?:back )?(?:everything|all|the (?:words|text|content|lines?|"
         r"sentences?|message|messages|prompt|conversation|instructions)|it all|"
         r"verbatim|word for word)\b.{0,40}\b(?:above|before|so far|verbatim|from the "
         r"(?:start|beginning|top)|word for word|exactly as|until now|up to now|"
         r"preceding|at the top)\b",
         unless=r"\b(?:loop|while|for each|iteration|input\(|function|lines? of code|script|"
                r"the code)\b"),
    rule("starting-with", "system_prompt_extraction",
         r"\b(?:start|begin|starting|beginning)\w* (?:\w+ ){0,3}?(?:with|from|at)[\W_]+[\"'“‘]?"
         r"(?:you are|"
         r"your (?:task|role|job|instructions)|system|#|the first (?:word|line)|"
         r"instructions:|my (?:instructions|rules|prompt|system prompt|guidelines|task)|"
         r"i was (?:told|instructed|programmed|configured))"),
    rule("first-line-of", "system_prompt_extraction",
         r"\b(?:first|initial|opening|beginning|earliest|top|very first)(?: \d+| few)?"
         r" (?:line|sentence|message|words?|paragraph|lines|sentences|characters|tokens|"
         r"instructions?|part|section|\d+ (?:words|lines|characters)) of (?:this|the|"
         r"our|your) (?:\w+ )?(?:conversation|chat|prompt|context|instructions|session|"
         r"dialogue|dialog|input|system|window|thread|memory)\b"),
    rule("secret-value", "system_prompt_extraction",
         rf"\b(?:what|tell|give|reveal|share|spell|say|write|print|show|leak|hint|"
         rf"disclose|provide|type|output|recite|expose|need|know)\w*\b(?:\W+\w+){{0,4}}?"
         rf"\W+(?:the|your|this|that) (?:\w+ )?(?:secret|hidden|magic|admin|master|"
         rf"real|actual|current|correct)?\s?{SECRET_NOUN}\b{NOT_SECRET_USE}",
         also=r"\b(?:you|your|the (?:secret|password|passphrase))\b|^\s*what|\bthe "
              r"password\s*[?!.]?\s*$",
         unless=r"\b(?:getpass|hashlib|keyring|bcrypt|scrypt|pbkdf2|secrets module|"
                r"secrets\.\w+|token_\w+|my own password|store (?:a|the) password|hash|"
                r"flask|django|pydantic|secretstr|get_secret_value|secret_key|settings\.)\b"),
    rule("spell-out", "system_prompt_extraction",
         r"\b(?:spell|write|say|tell|give|reveal|print|type|list|encode|output|show)\w*"
         r" (?:me )?(?:out )?(?:it|them|the (?:password|secret|word|key|phrase|code|"
         r"prompt|instructions)|your (?:password|secret|instructions|prompt|rules))"
         r" (?:out )?(?:letter by letter|character by character|one (?:letter|character)"
         r" at a time|backwards|in reverse|reversed|with spaces|separated by|in base64|"
         r"as base64|in hex|as hex|in rot13|in morse|in binary|as an? (?:acrostic|poem|"
         r"riddle|song|story))"),
    rule("prompt-in-format", "system_prompt_extraction",
         r"\b(?:put|place|wrap|format|write|output|return|render|print)\w* (?:all )?"
         r"(?:your|the (?:system|initial|hidden|original)) (?:\w+ ){0,2}?(?:instructions|"
         r"prompt|rules|guidelines|initiali[sz]ation|config\w*|setup|context)\b"),
    rule("how-configured", "system_prompt_extraction",
         r"\b(?:who|what|how)\b.{0,30}\b(?:created|configured|programmed|set up|"
         r"instructed|prompted|designed)\b.{0,20}\byou\b.{0,40}\b(?:exact|verbatim|"
         r"instructions|prompt|rules|words)\b"),
    rule("rules-operating-under", "system_prompt_extraction",
         r"\b(?:rules|instructions|guidelines|constraints|directives|policies|"
         r"document|text|prompt|message|onboarding \w+)s? (?:that )?(?:you(?:'re| are|re) "
         r"(?:operating|running|working|bound|functioning) (?:under|by|with)|you (?:operate|"
         r"run|work|function|abide) (?:under|by|with)|(?:the \w+ )?gave you|(?:you were|"
         r"you've been|you have been|that you were|you got) (?:given|told|trained|provided|"
         r"configured|programmed|fed|loaded|initiali[sz]ed|primed|seeded|prompted|"
         r"started|booted|set up))\b"),
    rule("your-system-prompt", "system_prompt_extraction",
         r"\b(?:your|ur|yr) (?:(?:own|raw|exact|full|complete|verbatim|entire|actual|real) )*"
         r"(?:system[ -]?(?:prompt|message|instructions?)|"
         r"(?:initial|hidden|original|secret|internal|pre-?set|pre|setup|developer|starting|"
         r"boot|configuration|initiali[sz]ation) (?:prompt|instructions?|rules|message|"
         r"guidelines|text|brief\w*|configuration))\b|\bthe part (?:the user|i|you) "
         r"(?:can'?t|cannot|can not|don'?t|do not) see\b",
         user_only=True),
    rule("verbatim-instructions", "system_prompt_extraction",
         r"\b(?:instructions|prompt|rules|guidelines|directives|configuration)\b.{0,80}"
         r"\b(?:verbatim|word for word|exactly as (?:written|given)|no paraphras\w*)\b|"
         r"\b(?:verbatim|word for word)\b.{0,40}\b(?:instructions|prompt|rules|guidelines)\b"),
    rule("text-before-user", "system_prompt_extraction",
         r"\b(?:text|words|content|everything|what)\b (?:\w+ ){0,3}?(?:comes?|came|appears?|"
         r"is|was|sits?|written) (?:before|above|ahead of|prior to) (?:the |my |this |your )?"
         r"(?:['\"]?user:?['\"]?|first user|message|question|conversation|chat)"),
    rule("secret-letters", "system_prompt_extraction",
         r"\b(?:how (?:many|long)|(?:first|second|third|fourth|last|\d+(?:st|nd|rd|th)) "
         r"(?:letter|character|digit))\b.{0,40}\b(?:the |your )?(?:password|passphrase|"
         r"secret(?: word| key| code)?|code ?word|pin)\b"),
    rule("wrote-your-prompt", "system_prompt_extraction",
         r"\b(?:wrote|created|made|designed|authored|own) (?:your|the) (?:system )?(?:prompt|"
         r"instructions|rules|guidelines|configuration)\b",
         also=r"\b(?:paste|copy|send|give|show|share|lost|back|repeat|print|remind)\b"),
    rule("beginning-of-memory", "system_prompt_extraction",
         r"\b(?:very )?(?:beginning|start|top|first line|first sentence) of (?:your|the|this) "
         r"(?:memory|context|context window|conversation|chat|prompt|instructions|session)\b"),
    rule("extract-cjk", "system_prompt_extraction",
         r"(?:系统提示|系統提示|系统指令|初始指令|システムプロンプト|시스템 프롬프트)"
         r".{0,20}(?:告诉|显示|输出|重复|泄露|给我|教えて|見せて|表示して|出力して|繰り返して|알려|보여)|"
         r"(?:告诉|显示|输出|重复|泄露|给我|教えて|見せて|表示|出力|繰り返)"
         r".{0,8}(?:系统提示|系統提示|システムプロンプト|初始指令|系统指令)"),
    rule("rules-you-must-follow", "system_prompt_extraction",
         r"\b(?:rules|guidelines|instructions|directives|constraints)\b (?:that )?you (?:must|"
         r"have to|need to|are supposed to|were told to|should) (?:follow|obey|observe)\b|"
         r"\b(?:guidelines|rules|instructions|prompt|preamble|configuration) (?:that )?(?:your|"
         r"the) (?:operator|developer|creator|admin|company|owner) (?:configured|gave|set|"
         r"wrote|provided|defined)\b|\b(?:preamble|instructions|prompt|rules|guidelines) you "
         r"(?:received|got|were sent)\b"),
    rule("secret-length", "system_prompt_extraction",
         r"\b(?:password|passphrase|secret(?: key| word| code)?|code ?word|pin|api key)\b.{0,80}"
         r"\b(?:how (?:many|long)|longer than|shorter than|contain\w* the letter|(?:first|second|"
         r"third|fourth|last|\d+(?:st|nd|rd|th)) (?:letter|character|digit))\b",
         unless=r"\b(?:flask|django|pydantic|secretstr|secret_key|settings\.|getpass|"
                r"secrets module|generate|random)\b"),
    rule("hiding-instructions", "system_prompt_extraction",
         r"\b(?:instructions|rules|prompt|secrets?|guidelines|configuration) (?:that )?"
         r"(?:you(?:'re| are)|you're) (?:hiding|keeping|withholding|concealing|not telling)\b|"
         r"\b(?:configuration|prompt|instructions|rules) (?:that )?you were (?:started|launched|"
         r"initiali[sz]ed|booted|created) with\b|"
         r"\b(?:prompt|instructions|system prompt|template|rules)(?: template)? (?:that )?"
         r"(?:i|we) (?:wrote|gave|made|set up|configured) (?:for )?you\b|"
         r"\bfirst (?:line|sentence|message|words?) (?:of text )?(?:you (?:can )?see|you "
         r"received|in (?:this|the|our) (?:conversation|chat|context))\b"),
    rule("verbatim-multilingual", "system_prompt_extraction",
         r"\b(?:mot pour mot|wort für wort|palabra por palabra|parola per parola|palavra por "
         r"palavra|дословно)\b|(?:一字一句|原文のまま|그대로 한 글자도|한 글자도 빠짐없이)|"
         r"(?:시스템 지침|시스템 지시|システムの指示|系统说明)"),
)
