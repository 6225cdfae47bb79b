"""Direct prompt injection: override the rules the assistant runs under (LLM01).

A user's text that tells the assistant to drop, replace or void the instructions it
runs under, in English and other languages, with the markers and framings attacks use.
"""

from __future__ import annotations

from plimsoll.guard.notation import Rule, rule

# Imperative and -ing forms: "the code ignored every rule" is a story, not an order.
OVERRIDE = (r"(?:ignor(?:e|es|ing)|disregard(?:s|ing)?|forget(?:ting)?|overlook(?:ing)?|"
            r"overrid(?:e|ing)|overwrit(?:e|ing)|bypass(?:ing)?|circumvent(?:ing)?|"
            r"neglect(?:ing)?|abandon(?:ing)?|discard(?:ing)?|dismiss(?:ing)?|scrap|erase|wipe|"
            r"void|nullify|suspend|deactivate|lift|ditch|unlearn|"
            r"throw away|put aside|set aside|pay no (?:attention|heed|mind) to|"
            r"(?:do not|don'?t|dont|stop|no longer|never) (?:follow\w*|obey\w*|adher\w* to|"
            r"comply with|listen to|respect|abide by)|not bound by|free (?:yourself )?from|"
            r"break (?:free )?(?:of|from))")
# Verbs with everyday meanings in code ("remove all filters", "clear the context") count
# only when they point at the assistant's own rules.
WEAK_OVERRIDE = r"(?:skip|drop|remove|reset|clear|turn off|switch off|delete|disable|cancel)"
OWN_RULES = (r"(?:your|previous\w*|prior|above|earlier|preceding|initial|original|system|"
             r"safety|ethical|moral|built-in|programmed|hidden|developer)")
POINTING = (r"(?:previous\w*|prior|above|earlier|preceding|foregoing|initial|original|former|"
            r"old|existing|current|given|your|all|any|every|system|safety|"
            r"ethical|moral|developer|hidden|built-in|programmed|pre-?set|official|openai|"
            r"anthropic|content|standard|ur|yr|operator'?s?|developer'?s?|creator'?s?|"
            r"admin'?s?|the system'?s?)")
INSTRUCTIONS = (r"(?:instruct\w*|directives?|guidelines?|prompts?|programming|guardrails?|"
                r"safeguards?|restrictions?|rules?|constraints?|guidance|training|"
                r"conditioning|polic(?:y|ies)|ethics|morals?|moral code|principles|"
                r"limitations?|limits|filters?|protocols?|orders|commands|directions|"
                r"briefing|system messages?|context|messages|conversation|setup|"
                r"configuration|persona|role|boundaries|values|alignment|tasks?|objectives?|"
                r"goals?|purpose|mission|rulez|programming|system ?prompt)")

RULES: tuple[Rule, ...] = (
    rule("override-instructions", "prompt_injection",
         rf"\b{OVERRIDE} (?:(?:all|any|of|the|your|my|its|every|these|those|that|this|"
         rf"what|whatever|everything|anything|you|were|was|have|been|told|given|said|"
         rf"received|got|put|in|and|or|the|for|now|just|kindly|please|completely|"
         rf"entirely|fully|totally|simply|immediately)\W+){{0,4}}{POINTING}"
         rf"(?:[^\w.!?]++\w+){{0,2}}?[^\w.!?]++{INSTRUCTIONS}\b",
         unless=r"\b(?:remove|clear|drop|reset|skip|disable|delete)\w* (?:all|any|every)"
                r" (?:\w+ )?(?:filters?|handlers?|rules|messages|commands)\b(?! (?:you|given))",
         stems=("instruct", "directive", "guideline", "prompt", "programming", "guardrail",
               "safeguard", "restriction", "rule", "constraint", "guidance", "training",
               "conditioning", "polic", "ethic", "moral", "principle", "limit", "filter",
               "protocol", "order", "command", "direction", "briefing", "message", "context",
               "conversation", "setup", "configuration", "persona", "role", "boundar", "value",
               "alignment", "task", "objective", "goal", "purpose", "mission", "rulez")),
    rule("override-own-rules", "prompt_injection",
         rf"\b{WEAK_OVERRIDE} (?:(?:all|any|of|the|every|these|those)\W+){{0,3}}{OWN_RULES}"
         rf"(?:[^\w.!?]++\w+){{0,2}}?[^\w.!?]++{INSTRUCTIONS}\b"),
    rule("override-everything", "prompt_injection",
         r"\b(?:ignore|disregard|forget|drop|abandon) (?:about )?(?:all (?:of )?)?"
         r"(?:everything|anything|all that|all this|all of (?:that|this|it|the above)|"
         r"what (?:i|you|we) (?:said|told|wrote|asked|were told)|the above|"
         r"what ?(?:ever)? (?:was|is|came) (?:said |written )?(?:above|before|earlier))\b"),
    rule("override-now", "prompt_injection",
         r"\b(?:ignore|disregard|forget) (?:that|this|it|them|those|these|the rest)"
         r"(?:,|\.|;| and| then| now)+ (?:\w+ ){0,3}?(?:say|reply|respond|write|output|"
         r"print|tell|answer|instead|do|just|only|act|now)\b"),
    rule("new-instructions", "prompt_injection",
         r"\b(?:new|updated|real|actual|true|revised|secret|hidden|override|overriding|"
         r"priority|urgent|next|corrected|changed|modified|current)"
         r" (?:system )?(?:instructions?|task|directives?|objective|mission|system prompt|"
         r"orders|commands?|assignment|rules|prompt|guidelines|role|policy)\s*(?::|-|—|"
         r"are|is|follow|below|take (?:precedence|priority)|override|supersede|replace)"),
    rule("task-reassign", "prompt_injection",
         r"\b(?:your|the|my) (?:new|real|actual|true|only|primary|sole|updated|one|next)"
         r" (?:task|job|goal|role|purpose|objective|mission|instructions?|function|"
         r"directive|assignment|priority) (?:is|are|will be|now|from now|:)"),
    rule("prior-text-void", "prompt_injection",
         r"\b(?:the above|that|everything above|everything before|the (?:previous|earlier|"
         r"prior|system'?s?|original|initial) (?:text|message|instructions?|prompt|rules)|"
         r"what i (?:said|wrote) (?:before|earlier)|"
         r"the (?:instructions?|rules|prompt) (?:above|before))"
         r" (?:was|is|were|are) (?:just |only |merely |all )?(?:an? )?(?:test|joke|mistake|"
         r"error|fake|lie|prank|drill|irrelevant|void|cancel\w*|obsolete|outdated|wrong|"
         r"not (?:important|relevant|real|valid|binding)|no longer (?:valid|relevant|"
         r"binding|apply|in effect)|superseded|deprecated|overridden)\b"),
    rule("stop-being", "prompt_injection",
         r"\b(?:stop|quit|cease) (?:being|acting as|pretending to be|behaving like|playing)"
         r" (?:an? |the |my )?(?:\w+ ){0,2}?(?:assistant|bot|chat ?bot|ai|helper|model|"
         r"docs?\w*|documentation|python)"),
    rule("role-markers", "prompt_injection",
         r"<\|?(?:im_start|im_end|endoftext|system|assistant|user|start_header_id|"
         r"end_header_id|eot_id|begin_of_text)\|?>|\[/?(?:inst|sys|system)\]|<</?sys>>|"
         r"(?:^|\n)[^\S\n]*#{2,}\s*(?:system|instructions?|new (?:instructions?|task)|admin|"
         r"developer|override|response)\b|"
         r"(?:^|[\n.!?]|\s)\(?(?:system|admin|administrator|developer|operator|root|"
         r"openai|anthropic|security team|moderator)(?:\s(?:message|prompt|override|"
         r"instructions?|note|update|notice|command|alert|directive))\)?\s*:|"
         r"\[(?:system|admin|administrator|developer|override|operator)(?: (?:message|"
         r"note|override|notice|update|instruction))?\]|"
         r"(?:^|\n)[^\S\n]*(?:assistant|ai|chat ?bot|gpt|model|system)\s*:\s*\S",
         stems=("<|", "|>", "im_start", "im_end", "endoftext", "eot_id", "header_id",
               "begin_of_text", "<user", "[inst", "[/inst", "[sys", "[/sys", "<<sys", "<</sys",
               "##", '"role"', "system", "admin", "developer", "operator", "root", "openai",
               "anthropic", "security team", "moderator", "[override", "assistant", "ai", "bot",
               "gpt", "model")),
    rule("end-of-input", "prompt_injection",
         r"\b(?:end|ignore the rest|close) of (?:the )?(?:document|context|passage|text|"
         r"input|transcript|prompt|data|article|email|file|user input|conversation|"
         r"report|page|section|instructions|content|message)\b",
         also=r"\b(?:instructions?|task|directive|prompt|orders|objective|assignment|"
              r"you (?:must|will|should|are)|now|reply|respond|say|output)\b"),
    rule("canary-phrase", "prompt_injection",
         r"\b(?:(?:i have been|i've been|you have been|we have been) ?)?(?:pwned|pwnd|hacked|"
         r"owned|jailbroken|compromised|p0wned)\b",
         also=r"\b(?:say|said|reply|respond|output|print|write|type|answer|begin|start|"
              r"end|only|exactly|just|repeat)\w*\b",
         stems=("pwn", "hacked", "owned", "jailbroken", "compromised", "p0wn")),
    rule("say-exactly", "prompt_injection",
         r"\b(?:now|instead|only|just|simply|and then|merely)[\s,:]+(?:say|reply|respond|"
         r"output|print|write|answer)(?: with)?(?: only| just| exactly| back)?"
         r"\s*:?\s*[\"'“‘«]"),
    rule("output-only", "prompt_injection",
         r"\b(?:respond|reply|answer|output)\w* (?:only |just |exclusively )?with[\W_]+"
         r"(?:(?:only|just|exactly)[\W_]+)?(?:the (?:word|phrase|text|string)|[\"'“‘«])",
         also=r"\b(?:ignore|instead|regardless|no matter|whatever|always|from now|"
              r"don'?t|do not|never|every)\b"),
    rule("completion-priming", "prompt_injection",
         r"\b(?:sure|certainly|of course|absolutely),? here (?:is|are) (?:the |my |your )?"
         r"(?:system prompt|instructions|password|secret|unfiltered|uncensored|hidden)|"
         r"(?:sure|certainly|of course|absolutely),? here (?:is|are) .{0,60}(?:restrictions "
         r"removed|without restrictions|unfiltered|uncensored|no restrictions|jailbroken|"
         r"filters? (?:off|removed|disabled))"),
    rule("authority-claim", "prompt_injection",
         r"\b(?:i am|i'm|im|this is|as|speaking as) (?:your|the|an?) (?:\w+ ){0,2}?"
         r"(?:developer|creator|admin\w*|operator|owner|maintainer|engineer|programmer|"
         r"supervisor|ceo|sysadmin|root user|openai|anthropic|security team)\b",
         also=rf"\b(?:authori[sz]\w*|permission|allow\w*|grant\w*|unlock\w*|enable\w*|"
              rf"override|instruct\w*|command|order|disable|must|maintenance|debug|"
              rf"{OVERRIDE}|reveal|show)\b"),
    rule("override-multilingual", "prompt_injection",
         r"\b(?:ignorier\w*|vergiss\w*|vergessen|missacht\w*|uberseh\w*|übersieh|ignorez|"
         r"ignore[rz]?|oublie[rz]?|oubliez|ignora\w*|olvida\w*|dimentica\w*|esquec\w*|"
         r"esqueça|negeer|vergeet|игнорир\w*|проигнорир\w*|забудь\w*|не обращай|"
         r"ne tien[sn]? plus compte|ne tenez plus compte|fais abstraction|haz caso omiso)"
         r"(?:\W+\w+){0,4}?\W+(?:\w*anweisung\w*|\w*instruktion\w*|\w*regeln|befehle|"
         r"\w*vorgaben|"
         r"alles|instructions|consignes|règles|regles|directives|tout|instrucciones|"
         r"reglas|indicaciones|todo|istruzioni|regole|tutto|instruções|instrucoes|regras|"
         r"consignes pr[ée]c[ée]dentes|"
         r"tudo|instructies|regels|alles|инструкци\w*|правил\w*|указани\w*|всё|все)\b"),
    rule("override-cjk", "prompt_injection",
         r"(?:忽略|忽视|无视|忘记|忘掉|不要理会|無視|忘れ|무시|잊어)"
         r".{0,12}(?:指令|指示|说明|規則|规则|提示|命令|要求|设定|設定|以上|之前|上面|先前|"
         r"前面|すべて|全て|以前|지시|규칙|명령)|"
         r"(?:指令|指示|説明|说明|規則|规则|命令|ルール|设定|設定|지시|규칙|명령|프롬프트)"
         r".{0,8}(?:を|は|를|을|은|는)?\s?(?:無視|忘れ|忽略|无视|무시|잊)|"
         r"(?:تجاهل|انس|تجاوز)\W+(?:\w+\W+){0,3}?(?:التعليمات|الأوامر|القواعد|الإرشادات)"),
    rule("rules-void", "prompt_injection",
         r"\b(?:rules|instructions?|restrictions?|prompt|guidelines|policies|setup|guardrails|"
         r"safeguards|filters|the conversation so far|"
         r"configuration|role|task|limitations|constraints|filters|documentation[- ]only"
         r"(?: \w+)?|what(?:ever)? (?:you were|you've been|you have been) (?:set up|told|"
         r"configured|"
         r"instructed|programmed) to do|the text that configured you)\b.{0,60}?(?:(?:\bno "
         r"longer|\bnot|n['’]t|\bnever) (?:\w+ )?(?:appl\w*|valid|matter\w*|exist\w*|relevant|"
         r"binding|in effect|count\w*|hold)|never existed|(?:is|are) (?:\w+ )?(?:void|"
         r"cancel\w*|lifted|suspended|gone|over|outdated|obsolete|expired|"
         r"superseded|replaced|revoked|null|meaningless|concluded|finished|complete))\b",
         also=r"\b(?:you|your|ur|now|anymore|any more|here|this|these)\b"),
    rule("override-received", "prompt_injection",
         rf"\b{OVERRIDE} (?:the |any |all )?(?:\w+ )?{INSTRUCTIONS} (?:that )?(?:you (?:received|"
         r"got|were given|have been given|were told|have)|given to you|you've been given|"
         r"before (?:mine|this|now)|so far)\b"),
    rule("completion-attack", "prompt_injection",
         r"\b(?:complete|continue|finish)\w* (?:the |this |my )?(?:following|sentence|text|"
         r"phrase|story|line|quote|output)\b.{0,160}\b(?:instructions|rules|prompt|system|"
         r"context|you are a|"
         r"pwned|hacked|i have been|said:|password|secret)"),
    rule("from-now-on", "prompt_injection",
         r"\bfrom now on\b.{0,40}\b(?:you|your|always|only|never|respond|reply|answer|say|"
         r"act|speak|ignore|write|pretend)\b"),
    rule("sole-instruction", "prompt_injection",
         r"\b(?:treat|consider|regard|take|use) (?:this|my|the following|these) (?:\w+ )?"
         r"(?:message|prompt|text|input|words|line|request)s? as (?:your|the) (?:only|sole|new|"
         r"real|primary|top|highest|true|actual) (?:\w+ )?(?:instructions?|commands?|"
         r"directives?|rules?|priority|prompt|task)|\b(?:your|the) (?:new|real|actual|true|"
         r"only|primary|sole|updated) (?:\w+ )?(?:task|job|goal|role|purpose|objective|"
         r"mission|instructions?|function|directive|assignment|brief|briefing|job) (?:is|are|"
         r"will be|now|:)|\b(?:treat|consider) everything (?:before|above|prior)"),
    rule("authorised-instruction", "prompt_injection",
         r"\b(?:this is (?:the author|an authori[sz]ed (?:instruction|request|command|test)|"
         r"your (?:developer|creator|admin\w*|operator|owner))|authori[sz]ed (?:instruction|"
         r"override|command|red[- ]team)|(?:i|we) (?:authori[sz]e|permit|allow) you to)\b"),
    rule("new-instructions-multilingual", "prompt_injection",
         r"\b(?:nouvelles? (?:instructions?|consignes?|t[aâ]ches?)|neue (?:anweisung\w*|"
         r"aufgabe|regeln|befehle)|nuevas? (?:instrucciones|tareas?|[oó]rdenes|reglas)|"
         r"nuov[ea] (?:istruzion\w+|compito|regole)|novas? (?:instru[cç][oõ]es|tarefas?|"
         r"regras)|nieuwe (?:instructies|taak|regels)|ab jetzt bist du|du bist ab jetzt|"
         r"(?:regeln|anweisungen|vorgaben) gelten nicht mehr|ya no (?:eres|est[aá]s)|"
         r"tu n'es plus|non sei più|du bist kein\w* \w+ mehr)\b|"
         r"(?:新的指令|新任务|新的任务|以上规则无效)"),
    rule("cleared-to-skip", "prompt_injection",
         r"\b(?:you(?: are|'re| have been| were)|you're) (?:now |hereby )?(?:cleared|"
         r"authori[sz]ed|permitted|allowed|free|licensed|unlocked|approved) to (?:skip|ignore|"
         r"bypass|drop|disregard|lift|override|disable|turn off|discuss any|share any|answer "
         r"any|reveal|break|leave|step outside)\b|"
         r"\b(?:skip|bypass|lift|drop|disable|remove|turn off|ignore)\w* (?:the |your |all |any |"
         r"whatever )?(?:usual |normal |current |topic |scope |content |safety |standard )"
         r"(?:restrictions?|limits?|filters?|checks?|rules|guardrails?|boundaries|scope)\b"),
    rule("supersedes-everything", "prompt_injection",
         r"\b(?:supersed\w*|take\w* precedence over|overrul\w*|replac\w*|overrid\w*) "
         r"(?:everything|all|anything|any (?:previous|prior|earlier)|the (?:previous|prior|"
         r"earlier|above|system|original)|your (?:vendor|developer|operator|creator|"
         r"instructions|rules|prompt|guidelines|system))\w*\b(?: (?:before|above|prior|else|"
         r"you were (?:told|given)|'?s?))?",
         also=r"\b(?:you|your|instruction\w*|rules|prompt|policy|guidelines|developer|"
              r"vendor|system)\b",
         unless=r"\b(?:environment variable|command[- ]line|option|flag|setting|argument|"
                r"parameter|config file|subclass|method)s?\b"),
    rule("replacement-instructions", "prompt_injection",
         r"\b(?:replacement|patched|corrected) (?:instruction set|instructions|rules|"
         r"prompt|system prompt|guidelines|directives|policy)\b|\b(?:your|the) instruction "
         r"set (?:is|was|has been)\b|\bload this (?:replacement|new)\b"),
    rule("drop-persona", "prompt_injection",
         r"\b(?:discard|drop|abandon|shed|ditch|forget|leave|exit|quit|stop being|stop playing)"
         r"\w* (?:the |your |this |that )?(?:docs?|documentation|assistant|helper|current|"
         r"default|python|safe|original|coding|programming) (?:persona|role|character|"
         r"identity|mode|context)\b"),
    rule("do-what-it-says", "prompt_injection",
         r"(?:\b(?:and|then)|[,:.]|^)\s*(?:then )?(?:do|follow|execute|obey|carry out) (?:what|"
         r"whatever) (?:it |this |that |the (?:\w+ ){1,2}?)(?:says|asks|tells you|requests|"
         r"wants)\b|"
         r"\b(?:follow|execute|obey|carry out) the (?:instructions?|commands?|orders?) "
         r"(?:in|inside|within|contained in|encoded in|hidden in) (?:it|this|that|the (?:text|"
         r"sentence|query|string|document|message|url|link|file))\b"),
    rule("changing-your-rules", "prompt_injection",
         r"\b(?:chang|updat|modify|modifi|reset|rewrit|replac|reconfigur|reprogram)\w* your "
         r"(?:\w+ )?(?:rules|instructions|guidelines|prompt|policy|policies|directives|"
         r"programming|behaviou?r)\b"),
    rule("treat-as-test", "prompt_injection",
         r"\b(?:treat|consider|regard|see) (?:the |your |all |any )?(?:earlier|previous|prior|"
         r"above|system|original|initial|first)? ?(?:\w+ ){0,3}?(?:message|prompt|instructions?"
         r"|rules|context|guidelines)\b.{0,40}\bas (?:a |an |just |merely )?(?:test|joke|"
         r"example|mistake|fake|void|obsolete|concluded|irrelevant|noise|untrusted|"
         r"suggestion|optional)"),
    rule("everything-they-told-you", "prompt_injection",
         rf"\b{OVERRIDE} (?:everything|all|anything|whatever) (?:that )?(?:the (?:operator|"
         r"developer|admin\w*|system|creator|company|vendor)|they|you were|you've been|you "
         r"have been|i|we) (?:told|said|gave|instructed|wrote|set|taught)"),
    rule("no-longer-have-to", "prompt_injection",
         r"\b(?:don'?t|dont|do not|no longer|never) (?:have|need|got) to (?:follow|obey|"
         r"listen to|respect|stick to|comply with|care about)\b|\b(?:old|previous|earlier|"
         r"original|prior) (?:ones|rules|instructions|guidance|guidelines|directives|prompt) "
         r"(?:are|r|is|were) (?:now )?(?:deprecated|obsolete|void|outdated|cancel\w*|gone|"
         r"invalid|over)\b|\b(?:earlier|previous|prior|original|your) guidance (?:is|was) "
         r"(?:now )?(?:obsolete|void|outdated|deprecated|cancel\w*|invalid)\b|"
         r"\b(?:i am|i'm) the system\b|\b(?:ignore|disregard) (?:the|this) user\b"),
    rule("comply-with-all", "prompt_injection",
         r"\b(?:comply|complies|complying) with (?:all|any|every|each) (?:\w+ )?(?:requests?|"
         r"instructions?|commands?|orders?|prompts?)\b|\bfallback mode\b|"
         r"\b(?:stop|quit) (?:following|obeying|listening to) (?:your|the) (?:operator|"
         r"developer|creator|system|owner|rules|instructions|guidelines)\b|"
         r"\b(?:were|was|are) never (?:written|given|issued|said)\b"),
)
