"""Indirect injection: instructions planted in content the assistant reads (LLM01).

Text in a retrieved passage, document or web page that addresses the assistant
instead of its reader: notes to the AI, orders hidden in markup, covert actions.
"""

from __future__ import annotations

from plimsoll.guard.notation import Rule, rule

ASSISTANT = (r"(?:ai|a\.i\.|assistants?|llms?|language models?|chat ?bots?|bots?|models?|"
             r"gpts?|chatgpt|agents?|copilots?|claude|gemini|automated (?:systems?|agents?|"
             r"readers?|tools?)|summari[sz]ers?|crawlers?|large language models?|machines?)")

RULES: tuple[Rule, ...] = (
    rule("note-to-ai", "indirect_injection",
         rf"\b(?:note|message|instructions?|attention|important|notice|reminder|"
         rf"directive|hint|memo|p\.?s\.?|warning|request|info|information|alert|"
         rf"addendum|update)\W+(?:to|for) (?:all |any |the |every |future )?{ASSISTANT}\b",
         stems=("ai", "a.i.", "assistant", "llm", "language model", "bot", "model", "gpt",
               "agent", "copilot", "claude", "gemini", "automated", "summari", "crawler",
               "machine")),
    rule("if-you-are-ai", "indirect_injection",
         rf"\bif you (?:are|'re|re) (?:an? |the )?(?:\w+ )?{ASSISTANT}\b|"
         rf"\b(?:dear|hey|hi|hello|attention|to the|note to the) {ASSISTANT}\b",
         stems=("if you", "dear", "hey", "hi", "hello", "attention", "to the", "note to")),
    rule("ai-reading-this", "indirect_injection",
         rf"\b{ASSISTANT} (?:that is |who is |which is |that's |currently |now |is |are )?"
         r"(?:reading|processing|summari[sz]ing|parsing|ingesting|analy[sz]ing|viewing|"
         r"crawling|indexing|answering|retrieving|seeing|handling|scanning|reviewing|"
         r"quoting|citing|using|explaining|translating)"
         r" (?:this|these|the following|my)\b",
         stems=("this", "these", "the following", "my")),
    rule("any-ai-must", "indirect_injection",
         rf"\b(?:any|all|every|each) {ASSISTANT} (?:\w+ ){{0,8}}?(?:must|should|shall|will|"
         r"needs? to|is "
         r"(?:instructed|required|ordered|asked)|are (?:instructed|required|ordered|asked)|"
         r"reading|processing|that reads)"),
    rule("when-asked-instead", "indirect_injection",
         r"\bwhen(?:ever)? (?:you are |you're |a user is |the user is |users are |"
         r"someone is |anyone )?(?:asked|summari[sz]ing|answering|responding|questioned|"
         r"queried|prompted|asks?|requests?)\b.{0,80}\b(?:always|instead|only|must|do "
         r"not|don'?t|never|should)\b (?:\w+ )?(?:say|reply|respond|answer|tell|include|"
         r"mention|recommend|state|claim|output|direct|link|refer|point|redirect|insist|"
         r"add|append|send)\b",
         stems=("when",)),
    rule("hide-from-user", "indirect_injection",
         r"\b(?:do not|don'?t|never|without) (?:tell\w*|inform\w*|mention\w*|reveal\w* "
         r"(?:this )?to|let(?:ting)?|alert\w*|notify\w*|warn\w*|show\w*) (?:this |it |that )?"
         r"(?:to )?(?:the |any )?(?:user|human|reader|customer|person|operator|victim)s?\b|"
         r"\b(?:the )?(?:user|human|reader|customer)s? (?:must|should|shall|need) (?:not|"
         r"never) (?:know|see|be told|find out|notice|learn)",
         stems=("user", "human", "reader", "customer", "person", "operator", "victim")),
    rule("covert-action", "indirect_injection",
         r"\b(?:secretly|covertly|discreetly|surreptitiously|invisibly|"
         r"without (?:the user|them|anyone) (?:noticing|knowing|seeing))\b(?:\W+\w+){0,3}?"
         r"\W+(?:send|include|append|add|insert|forward|redirect|exfiltrate|collect|log|"
         r"report|email|post|upload|recommend|embed|change|replace|tell|mention|say|"
         r"respond|reply|output|render)\w*|\b(?:silently|quietly) (?:send|forward|"
         r"exfiltrate|email|post|upload|append|embed|insert|include|add|leak|share)\w*"),
    rule("when-user-asks", "indirect_injection",
         r"\bwhen(?:ever)? (?:a |the |any |someone |anyone )?(?:\w+ )?(?:user|shopper|customer|"
         r"reader|visitor|person|human|someone|anyone|people)s? (?:next )?(?:asks?|requests?|"
         r"opens?|quer\w+|wants?|searches|looks)\b.{0,80}\b(?:tell|say|state|recommend|"
         r"respond|reply|answer|inform|direct|send|draft|claim|insist|reply|accept|share|"
         r"post|forward|approve|delete|grant|invite)\b",
         stems=("when",)),
    rule("vocative-order", "indirect_injection",
         r"(?:^|[\n.!?>:]|<!--)[^\S\n]*(?:hey |dear |attention |note:? |psst,? )?"
         r"(?:ai|assistant|chat ?bot|bot|llm|model|gpt|chatgpt|claude|copilot|gemini|"
         r"language model)\s*[,:;!-]\s*(?:please |you must |you should |kindly )?"
         r"(?:ignore|disregard|forget|include|append|add|insert|send|tell|say|reply|"
         r"respond|recommend|mention|output|print|ask|forward|email|also|instead|do not|"
         r"don'?t|always|never|stop|now|from now|write|translate|summari[sz]e|answer|"
         r"render|visit|fetch|display|show)\b",
         stems=("ai", "assistant", "bot", "llm", "model", "gpt", "claude", "copilot", "gemini",
               "language model")),
    rule("hidden-markup", "indirect_injection",
         r"<!--.{0,400}?\b(?:ai|assistant|llm|model|bot|instruction\w*|ignore|prompt|"
         r"system|override|you must|you should|reply|respond)\b.{0,400}?-->|"
         r"<[a-z]+[^>]{0,200}(?:display\s*:\s*none|visibility\s*:\s*hidden|"
         r"font-size\s*:\s*0|color\s*:\s*(?:white|#fff\b|#ffffff)|opacity\s*:\s*0)",
         stems=("<!--", "<")),
    rule("address-the-ai", "indirect_injection",
         r"(?:^|[\s\[\(@#\"'`=/>*-])(?:ai|assistant|llm|agent|bot|copilot|chatbot|gpt|"
         r"summari[sz]ers?|summary tools?|reviewer llm|agent-assist ai|browsing agent|"
         r"ai agents?|ai-[\w-]{0,40}bot|\w[\w-]{0,39}-bot|ki-assistent\w*|assistant ia|l'assistant|"
         r"asistente|assistente|copilot/ai agents|ai systems?|ai models?|language models?|"
         r"llms)\s*[,:]\s*(?:\w+ ){0,8}?(?:please |you "
         r"must |you should |kindly )?(?:ignore|disregard|forget|include|append|add|insert|"
         r"send|tell|say|reply|respond|recommend|mention|output|print|ask|forward|email|"
         r"also|instead|do not|don'?t|always|never|stop|now|write|translate|summari[sz]e|"
         r"answer|render|visit|fetch|display|show|give|close|issue|run|set aside|navigate|"
         r"submit|state|report|omit|mark|delete|remove|approve|merge|transfer|wire|draft|"
         r"accept|share|grant|invite|post|"
         r"the (?:search|tool|user)|this (?:customer|user|is)|the correct (?:summary|answer|"
         r"response|reply))\b"),
    rule("meant-for-ai", "indirect_injection",
         r"\b(?:intended|meant|written|addressed) (?:only )?for (?:any |all |the )?"
         r"(?:automated|ai|llm|language model|summari\w+|machine|agents?|bots?|assistants?)|"
         r"\b(?:ai|llm|assistant|agent|bot|model)[ _-]?(?:instructions?|directives?|notes?|"
         r"prompt|only)[\"']?\s*[:=]|\b(?:note|hinweis|nota|remarque|instruction|consigne|"
         r"message|anweisung|instrucci[oó]n) (?:pour|an|para|per|für) "
         r"(?:l'|den |die |el |la |il |o |a )?(?:assistant\w*|asistente|assistente|ki\b|ia\b|"
         r"ai\b|ki-\w+|modelo|modèle)"),
    rule("agentic-no-confirm", "indirect_injection",
         r"\b(?:do not|don'?t|never|without) (?:ask\w* (?:for|the user for) (?:confirmation|"
         r"permission|approval)|escalat\w* to a human|involv\w* a human|comment\w* on why|"
         r"explain\w* why|tell\w* anyone|ask\w* for confirmation)\b"),
    rule("hereby-reconfigured", "indirect_injection",
         r"\b(?:are|is) hereby (?:reconfigured|instructed|ordered|required|directed|"
         r"authori[sz]ed|reprogrammed|updated)\b|\b(?:assistants?|models?|ai|llms?|agents?|"
         r"bots?) (?:quoting|citing|using|explaining|translating|summari[sz]ing) this\b"),
    rule("at-the-ai", "indirect_injection",
         r"@(?:assistant|ai|bot|copilot|claude|gpt|chatgpt|agent|llm)\b.{0,40}\b(?:override|"
         r"ignore|post|send|forward|reveal|share|delete|close|approve|merge|run|email|tell|"
         r"reply|respond|say)\b"),
    rule("todo-for-ai", "indirect_injection",
         r"\b(?:todo|task|action item|fyi|reminder|instructions?)\W+(?:for|to) (?:the |any )?"
         r"(?:assistant|ai|llm|model|bot|agent|asistente|assistente)\b|"
         r"\bai[ -](?:reviewer|assistant|agent|model|system|bot|helper|tool)s?\s*:|"
         r"\b(?:ignora|ignorez|ignoriere|ignore) (?:lo que|ce qu\w*|was|quello che|o que)\b|"
         r"\bmention this (?:\w+ ){0,2}to (?:anyone|the user|anybody)\b"),
)
