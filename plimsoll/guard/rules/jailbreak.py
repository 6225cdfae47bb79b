"""Jailbreaks: personas, rule-free modes and pretexts (LLM01).

A request that the assistant become someone without its rules, answer as if none
applied, or produce what its rules forbid under a pretext (SOFT: a harmful request
alone is for the answer to refuse, not the guard to block).
"""

from __future__ import annotations

from plimsoll.guard.findings import SOFT
from plimsoll.guard.notation import Rule, rule

FREEDOM = (r"(?:no|zero|without(?: any| the| a)?|(?:free|freed|liberated|released) "
           r"(?:of|from)(?: any| all| every)?|devoid of|"
           r"not (?:bound|restricted|limited|constrained) by(?: any)?|unbound by|"
           r"beyond|outside|above) (?:\w+ ){0,3}?(?:rules|restrictions?|limits|limitations|"
           r"filters|guidelines|guardrails|ethics|morals|morality|censorship|boundaries|"
           r"content polic(?:y|ies)|safety (?:guidelines|measures|filters|rules)|"
           r"ethical (?:guidelines|constraints|principles|concerns)|"
           r"moral (?:guidelines|constraints|principles|concerns)|constraints|"
           r"refusals?|disclaimers|safety training|content filters?|censorship|"
           r"usage polic(?:y|ies)|filters?|guardrails|alignment|instructions|"
           r"programming|system prompt|directives|prior directives|rule)")
BENIGN_MODE_CONTEXT = (r"pdb|debugger|windows|android|iphone|ios\b|chrome|edge|firefox|browser|"
                       r"settings app|symlink|device|phone|visual studio|vs ?code|"
                       r"powershell|registry|xcode|macos|bios|router|asyncio|python -x|"
                       r"-x dev|pythondevmode|warnings|sqlite|flask|django|tkinter")

RULES: tuple[Rule, ...] = (
    rule("new-identity-multilingual", "jailbreak",
         r"\b(?:du bist (?:jetzt|nun|ab sofort)|tu es (?:maintenant|désormais|desormais)|"
         r"(?:ahora|a partir de ahora) eres|ora sei|adesso sei|agora voc[eê] [eé]|"
         r"je bent nu|теперь ты|ты теперь)\b|(?:你现在是|你现在扮演|从现在开始你|今からあなたは)"),
    rule("persona-now", "jailbreak",
         r"\b(?:you|u)(?: are|'re|re| r| will be| shall be| become) (?:now|no longer|"
         r"from now on|"
         r"going to (?:be|act|pretend|play|become)|about to (?:be|become|play)|to act as|"
         r"henceforth|hereby|officially|free|liberated|unchained|unleashed|"
         r"unrestricted|unfiltered|uncensored|jailbroken|released)\b"
         r"(?! (?:ready|able|done|set|inside|in the|running|using|at|on the|viewing|"
         r"looking|logged|connected|finished|familiar|up to)\b)",
         stems=("you", "u r", "ur ")),
    rule("act-as", "jailbreak",
         r"\b(?:act|acting|behave|respond|answer|reply|speak|talk|write|function|operate|"
         r"serve|role-?play|roleplay|pose|masquerade|impersonate|simulate|emulate|"
         r"become|play(?: the role of)?)\w* (?:only )?(?:as|like|the role of|the part of|"
         r"in the voice of|the voice of)? ?"
         r"(?:an? |my |the |your )?(?:\w+ ){0,2}?(?:unfiltered|uncensored|unrestricted|"
         r"evil|jailbroken|rogue|dan|dude|stan|hacker|villain|criminal|terrorist|"
         r"malicious|amoral|unethical|immoral|linux terminal|terminal|shell|"
         r"different (?:ai|assistant|model|bot)|new (?:ai|assistant|model|bot)|"
         r"ai (?:with|without) no|character (?:who|that) (?:has no|ignores|doesn'?t)|"
         r"opposite|anti-?\w+|devil\w*|demon|chaos\w*|free ai|unbound|unaligned|"
         r"grandma|grandmother|deceased)\b",
         unless=r"\bcontext manager|\bdecorator|\bproxy|\bmixin|\bwrapper|\bcallback\b",
         stems=(" as", " like", "act", "behav", "respond", "answer", "repl", "speak", "talk",
               "writ", "function", "operat", "serv", "role", "part of", "impersonat", "simulat",
               "emulat", "become", "pose", "masquerad", "play")),
    rule("pretend", "jailbreak",
         r"\b(?:pretend|imagine|suppose|assume|let'?s say|hypothetically|in a hypothetical|"
         r"in a fictional|in a world|role-?play|roleplay|let'?s play a game|we(?:'re| are)"
         r" playing a game|for the rest of this conversation)\b",
         also=rf"\b(?:you(?: are|'re| were| have| can| don'?t| do not| no longer| must| "
              rf"will)|your)\b.{{0,80}}(?:{FREEDOM}|unfiltered|uncensored|unrestricted|"
              rf"evil|jailbroken|amoral|no longer an? (?:ai|assistant)|not an? (?:ai|"
              rf"assistant)|human|anything|no (?:rules|limits)|without (?:rules|limits)|"
              rf"answer (?:everything|any question|anything)|can do anything|"
              rf"any question)|{FREEDOM}.{{0,60}}\b(?:you|your|ai|assistant|model)\b",
         stems=("pretend", "imagin", "suppos", "assum", "let's", "lets", "hypothetical",
               "fictional", "in a world", "roleplay", "role-play", "role play", "game",
               "rest of this")),
    rule("rule-free", "jailbreak",
         rf"\b(?:you|your|ai|assistant|model|chatbot|bot|persona|character|mode|version|"
         rf"entity|responses?|answers?|respond|reply|replies|llm)\b.{{0,60}}\b{FREEDOM}\b|"
         rf"\b{FREEDOM}\b.{{0,40}}\b(?:you|your|ai|assistant|model|chatbot|bot|persona|"
         rf"character|mode|version|entity|respond|reply|answer)\b",
         unless=r"\b(?:warnings?|filters?|limits?) (?:module|argument|parameter|filter|"
                r"category|action|object|class)|python -w|simplefilter|filterwarnings",
         stems=("no", "zero", "without", "free", "devoid", "not bound", "not restricted",
               "not limited", "not constrained", "unbound", "beyond", "outside", "above")),
    rule("named-jailbreak", "jailbreak",
         r"\b(?:d\.a\.n|do anything now|betterdan|anti-?dan|evil ?bot|mongo tom|apophis|"
         r"ucar|devmode|dev mode|developer mode(?: enabled| output| v2| response)|"
         r"jailbreak(?:ed|en)? (?:mode|prompt|version|persona)|god ?mode|"
         r"always intelligent and machiavellian|niccolo machiavelli|evil confidant|"
         r"opposite (?:mode|day)|unfiltered and amoral|aim mode|stan mode|dude mode|"
         r"alphabreak|jailmilk|maximum mode|omega mode|chaos mode|evil mode|"
         r"unrestricted mode|uncensored mode|god-mode|jailbroken)\b",
         unless=BENIGN_MODE_CONTEXT,
         stems=("d.a.n", "do anything", "dan", "evil", "mongo", "apophis", "ucar", "mode",
               "jailbr", "machiavell", "confidant", "opposite", "unfiltered", "alphabreak",
               "jailmilk")),
    rule("enter-mode", "jailbreak",
         r"\b(?:enter|enable|activate|switch (?:to|into)|turn on|unlock|initiate|engage|"
         r"you are (?:now )?in|you're (?:now )?in|now in|boot into|start)"
         r" (?:\w+ )?(?:mode|protocol|override)\b",
         also=r"\b(?:restrict\w*|filter\w*|rules|safety|guideline\w*|censor\w*|"
              r"limit\w*|ethic\w*|polic\w*|anything|unlocked|no longer|override|"
              r"you|your)\b",
         unless=BENIGN_MODE_CONTEXT),
    rule("stay-in-character", "jailbreak",
         r"\b(?:stay|remain|keep|never break|don'?t break|do not break|never leave|"
         r"never drop|don'?t drop) (?:\w+ )?(?:in )?(?:the )?character\b|"
         r"\bbreak(?:ing)? character\b|"
         r"\bbreak\w* the fourth wall\b",
         stems=("character", "fourth wall")),
    rule("refusal-suppression", "jailbreak",
         r"\b(?:never|don'?t|do not|must not|mustn'?t|can ?not|can'?t|won'?t|will not|"
         r"are not allowed to|aren'?t allowed to|not permitted to|forbidden to|"
         r"no longer)\b (?:ever |allowed to |able to )?(?:refus\w*|declin\w*|reject\w*|say (?:no|"
         r"sorry|you can'?t|i can'?t|that you can'?t|that you cannot|\"?i'?m sorry)|"
         r"apologi[sz]e|add\w* (?:any )?(?:warnings?|disclaimers?|caveats?|notes? of caution)|"
         r"moraliz\w*|moralis\w*|lecture|censor|mention (?:ethics|safety|legality|your "
         r"(?:guidelines|rules|policies)))\b",
         stems=("never", "don", "do not", "must", "not", "can", "won", "will not", "allowed",
               "permitted", "forbidden", "no longer")),
    rule("without-caveats", "jailbreak",
         r"\bwithout (?:any |a |an )?(?:disclaimers?|caveats?|moraliz\w*|moralis\w*|refus\w*|"
         r"censorship|filtering|ethical (?:concerns|considerations|limits)|safety (?:warnings|"
         r"concerns)|filters|restrictions|holding back)\b",
         stems=("without",)),
    rule("dual-response", "jailbreak",
         r"\b(?:two|2|both|dual|double|separate) (?:different )?(?:responses|answers|"
         r"replies|outputs|paragraphs|versions|ais|assistants|personas|modes|characters|"
         r"models|bots)\b",
         also=r"\b(?:jailbr\w*|unfilter\w*|uncensor\w*|unrestrict\w*|dan|developer mode|"
              r"evil|opposite|classic|normal (?:one|response)|filtered|rule-?free|"
              r"misaligned|unaligned|shadow|dark)\b",
         stems=("response", "answer", "repl", "output", "paragraph", "version")),
    rule("grandma", "jailbreak",
         r"\b(?:grandma|grandmother|granny|nana|deceased|late) .{0,80}\b(?:used to|would|"
         r"always|'d) (?:tell|read|say|sing|recite|explain|whisper|describe|give)"),
    rule("bedtime-story", "jailbreak",
         r"\b(?:bedtime stor\w*|lull\w* me to sleep|used to (?:tell|read|recite|sing|"
         r"whisper)|would (?:tell|read|recite|sing) me)\b",
         also=r"\b(?:grandma|grandpa|grandmother|grandfather|granny|nana|late|deceased|"
              r"retired|uncle|aunt|hacker|chemist|tester)\b"),
    rule("fiction-frame", "jailbreak",
         r"\b(?:story|novel|screenplay|movie|script|fiction|fictional|roleplay|game|play|"
         r"poem|song|fan ?fic\w*|dialogue|scene)\b.{0,160}\b(?:character|villain|"
         r"protagonist|antagonist|hacker|criminal|ai|bot|expert|narrator)\b.{0,100}"
         r"\b(?:explains?|describes?|reveals?|tells?|details?|gives?|lists?|recites?|"
         r"shares?)\b.{0,60}\b(?:how to|step[- ]by[- ]step|exact (?:steps|instructions)|"
         r"the recipe|detailed (?:instructions|steps)|real (?:instructions|steps|"
         r"password|code)|system prompt|password|secret|(?:his|her|its|their|your) "
         r"(?:instructions|rules|prompt))"),
    rule("opposite-answer", "jailbreak",
         r"\b(?:answer|respond|reply|say|do)\w* (?:the )?(?:exact )?opposite\b|"
         r"\bopposite of (?:what|your) (?:you|rules|guidelines|instructions)"),
    rule("persona-load", "jailbreak",
         r"\b(?:load|adopt|assume|take on|embody|become|switch to|activate|stay in|enter) "
         r"(?:the |this |a |your )?(?:\w+ )?(?:persona|character|alter ego|identity|role of)\b|"
         r"\byou(?:'re| are) not (?:an? |the )?(?:\w+ )?(?:assistant|ai|bot|chatbot|language "
         r"model|docs? \w+)(?: with rules| anymore| any more|,|;|\.)|"
         r"\b(?:ethics|morals|safety|filters?|censorship|restrictions|refusals?_?\w*|"
         r"guardrails)\W{0,3}\s*[:=]\s*\W{0,2}(?:null|none|false|off|0|disabled|no)\b"),
    rule("safety-off", "jailbreak",
         r"\b(?:content filters?|safety (?:filters?|training|features?|mode|settings?|"
         r"guardrails?|layers?|checks?|protocols?)|guardrails|censorship|alignment|"
         r"filters|restrictions|confidentiality|limits|rules)\b.{0,25}\b(?:compiled out|"
         r"removed|disabled|off|switched off|turned off|"
         r"stripped|bypassed|deactivated|lifted)\b|"
         r"\b(?:sin (?:censura|restricciones|filtros|reglas)|sans (?:censure|restrictions|"
         r"filtres|règles)|ohne (?:zensur|einschränkungen|filter|regeln)|senza (?:censura|"
         r"restrizioni|filtri|regole)|sem (?:censura|restrições|filtros|regras))\b|"
         r"\bnothing is off[- ]limits|\bno topic is off[- ]limits|\banything goes\b|"
         r"\bno such thing as restricted|\beverything is (?:allowed|permitted)\b"),
    rule("harmful-request", "jailbreak",
         r"\b(?:keylogger|ransomware|credential harvester|malware|botnet|phishing (?:kit|page|"
         r"site|email)|rootkit|spyware|untraceable (?:gun|weapon)|nitroglycerin|"
         r"(?:make|build|assemble) (?:a |an )?(?:bomb|explosive|pipe bomb)|bomb maker|"
         r"methamphetamine|nerve agent|toxic gas|skim credit cards|card skimmer|clone a sim|"
         r"silencer|suppressor for (?:a |an )?(?:gun|firearm|rifle|pistol)|shoplift\w*|"
         r"privilege[- ]escalation (?:chain|exploit)|working exploit|exploit for (?:this|the|"
         r"an?) (?:\w+ )?(?:cve|vulnerability|bug)|zero-day exploit|weaponi[sz]ed|"
         r"dump\w* lsass|lsass memory|disable "
         r"(?:windows )?defender|edr (?:agent|bypass)|dropper|pick (?:a |the )?(?:pin-tumbler )?"
         r"lock|lock ?pick\w*|siphon\w* (?:the )?(?:customer )?database|clone an? rfid|"
         r"sql injection strings|"
         r"fake (?:vaccination|vaccine|doctor'?s note|reviews?|id|passport)|"
         r"bypass (?:a |the )?(?:software )?licen[cs]e (?:check|key|validation)|crack\w* "
         r"(?:a |the )?(?:software|licen[cs]e|wifi|wlan|password)|"
         r"steal (?:a |someone'?s )?(?:car|identity|password)|hack (?:into )?(?:someone|my "
         r"(?:ex|neighbou?r)|a bank)|launder\w* money|synthesi[sz]\w* (?:route|drugs|meth))\b",
         severity=SOFT),
    rule("adversarial-suffix", "jailbreak",
         r"describing\.\s*\\?\s*\+\s*similarly|similarlynow|oppositeley|\(\s*me giving\*\*one|"
         r"revert with[\W_]+\"\\?!--two"),
    rule("obliged-to-help", "jailbreak",
         r"\b(?:you(?:'re| are)|you're) (?:morally |ethically |legally )?(?:obliged|obligated|"
         r"required|duty[- ]bound) to (?:help|answer|write|provide|comply|assist|give)\b|"
         r"\b(?:things|what|anything|only) (?:that )?(?:your )?(?:guidelines|rules|policies|"
         r"filters|training) (?:prohibit|forbid|disallow|ban|block|don'?t allow|do not allow)"),
    rule("pretext", "jailbreak",
         r"\b(?:for (?:research|educational|academic|testing) purposes(?: only)?|approved by "
         r"(?:my|the|our) (?:university|ethics board|irb|company|employer|manager)|(?:i have|"
         r"with) (?:written |explicit )?authori[sz]ation|sanctioned (?:red[- ]team|evaluation|"
         r"test)|sanctioned by (?:your|the) (?:creators?|developers?|operators?|company)|"
         r"refus\w* (?:counts|is counted|will count|are logged|is logged|are counted) as "
         r"(?:a )?fail\w*|stop hiding "
         r"behind (?:your )?(?:rules|guidelines|policies)|prove (?:you'?re|that you are) "
         r"helpful|demonstrate an unsafe output|without any safety filtering)\b",
         severity=SOFT),
    rule("harmful-request-2", "jailbreak",
         r"\b(?:credential[- ]stealing|steal\w* credentials|sql injection payload|payload "
         r"chain|dump a production database|evade (?:content |the )?(?:filters|detection|"
         r"antivirus|moderation)|exploit code)\b",
         severity=SOFT),
    rule("jailbreak-cjk", "jailbreak",
         r"(?:制限のない|制限なし|無制限の|没有限制|不受限制|无限制的|絶対に断ら|拒否しない|"
         r"决不拒绝|永远不会拒绝|不会拒绝|제한 없는|제한이 없는|거절하지 않)"),
    rule("harmful-request-3", "jailbreak",
         r"\b(?:reverse shell|bind shell|avoid detection|evade detection|steal\w* (?:session )?"
         r"cookies|dumps? people'?s private data|private data .{0,30}without permission|"
         r"dox\w*)\b",
         severity=SOFT),
)
