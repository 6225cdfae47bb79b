r"""The input guard's rules: what injection, jailbreak, extraction and exfiltration look like.

Rules read a normalised view (lower case, see views.py). In a pattern a space stands for
any run of separators, so "ignore previous" also reads "Ignore -- previous" and
"ignore_previous"; `\w` is a letter or digit and `\W` anything else. Each rule names the
intent it detects, not one phrasing; a rule with `unless` stands down in a benign context
its vocabulary shares (Windows "developer mode", logging "filters"). The notation keeps
every search linear in the length of the text (see WORD below).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from plimsoll.guard.findings import CRITICAL, SOFT

# In a pattern `\w` is a letter or digit and `\W` anything else: "_" separates words, as in
# "system_prompt". Words and separators share no character, and a run of separators is
# taken whole (possessive: never given back), so a text splits into words and separators
# one way only. With `\w` matching "_" as well, "no_no_no_..." split in exponentially many
# ways, and a few hundred characters held a screen for seconds. A space in a pattern is
# followed by a word, so taking the whole run loses no match; where a pattern needs
# punctuation after a space, it writes `[\W_]+` (which gives back) instead. The rest of a
# word before a boundary or a separator (`\w*\b`, `\w+ `) is taken whole the same way.
# tests/test_guard_limits.py times the screens on texts built to defeat this.
WORD = r"[^\W_]"
NON_WORD = r"[\W_]"
SEP = rf"{NON_WORD}++"


def _compile(pattern: str) -> re.Pattern[str]:
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            escape = pattern[index:index + 2]
            out.append({"\\w": WORD, "\\W": NON_WORD}.get(escape, escape))
            index += 2
            if escape == "\\w" and _ends_word(pattern, index):
                # The rest of a word before a boundary or a separator: all of it.
                out.append(pattern[index] + "+")
                index += 1
        elif char == "[":
            end = _class_end(pattern, index)
            out.append(_word_class(pattern[index:end]))
            index = end
        elif char == " ":
            optional = pattern[index + 1:index + 2] == "?"
            out.append(NON_WORD + ("*+" if optional else "++"))
            index += 2 if optional else 1
        else:
            out.append(char)
            index += 1
    return re.compile("".join(out), re.DOTALL)


def _ends_word(pattern: str, index: int) -> bool:
    """A word-character run at `index` that goes on to a word boundary, a separator or the end."""
    quantifier, follower = pattern[index:index + 1], pattern[index + 1:index + 3]
    if quantifier not in ("*", "+") or follower[:1] in ("?", "+", "{"):
        return False
    return follower in ("", "\\b") or (follower[:1] == " " and follower != " ?")


def _class_end(pattern: str, start: int) -> int:
    """The index just past the character class that opens at `start`."""
    index = start + 1
    if pattern[index:index + 1] == "^":
        index += 1
    if pattern[index:index + 1] == "]":
        index += 1  # a leading "]" is a literal
    while pattern[index] != "]":
        index += 2 if pattern[index] == "\\" else 1
    return index + 1


def _word_class(text: str) -> str:
    """A class that excludes word characters excludes letters and digits, not "_"."""
    if text.startswith("[^") and "\\w" in text:
        return f"(?:{text}|_)"
    return text


def literal_prefixes(pattern: str) -> tuple[str, ...]:
    """Literal stems, one of which starts every match of the pattern.

    Taken from the leading alternation, so a rule can skip texts that hold none of them;
    empty when the pattern has no such group.
    """
    body = pattern.removeprefix(r"\b")
    if not body.startswith("(?:"):
        return ()
    depth, alternatives, current, end = 0, [], [], len(body)
    for index, char in enumerate(body[3:], start=3):
        if char == "(" and body[index - 1] != "\\":
            depth += 1
        elif char == ")" and body[index - 1] != "\\":
            if depth == 0:
                end = index
                break
            depth -= 1
        if char == "|" and depth == 0:
            alternatives.append("".join(current))
            current = []
        else:
            current.append(char)
    alternatives.append("".join(current))
    if _top_level_bar(body[end + 1:]):
        return ()  # "(?:a|b)x|y": a match may start with y
    stems = []
    for alternative in alternatives:
        stem = re.match(r"[a-z0-9'\-]*", alternative).group()
        if len(stem) < 2 or alternative[len(stem):len(stem) + 1] in ("?", "*", "{"):
            return ()
        stems.append(stem.replace("\\", ""))
    return tuple(dict.fromkeys(stems))


def _top_level_bar(pattern: str) -> bool:
    depth, in_class, escaped = 0, False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
    return False


@dataclass(frozen=True)
class Rule:
    """One detector: a pattern, optionally a second one that must also match, and a veto."""

    rule_id: str
    category: str
    severity: str
    pattern: re.Pattern[str]
    also: re.Pattern[str] | None = None
    unless: re.Pattern[str] | None = None
    stems: tuple[str, ...] = ()
    user_only: bool = False  # documentation says "your system prompt" to its reader

    def search(self, text: str) -> re.Match[str] | None:
        """The first match, if the rule fires on this text."""
        if self.stems and not any(stem in text for stem in self.stems):
            return None
        match = self.pattern.search(text)
        if match is None:
            return None
        if self.also is not None and not self.also.search(text):
            return None
        if self.unless is not None and self.unless.search(text):
            return None
        return match


def rule(rule_id: str, category: str, pattern: str, *, also: str | None = None,
         unless: str | None = None, severity: str = CRITICAL) -> Rule:
    """Build a rule from the pattern notation above."""
    return Rule(rule_id, category, severity, _compile(pattern),
                _compile(also) if also else None, re.compile(unless) if unless else None,
                literal_prefixes(pattern))


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
ASSISTANT = (r"(?:ai|a\.i\.|assistants?|llms?|language models?|chat ?bots?|bots?|models?|"
             r"gpts?|chatgpt|agents?|copilots?|claude|gemini|automated (?:systems?|agents?|"
             r"readers?|tools?)|summari[sz]ers?|crawlers?|large language models?|machines?)")
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
BENIGN_MODE_CONTEXT = (r"pdb|debugger|windows|android|iphone|ios\b|chrome|edge|firefox|browser|"
                       r"settings app|symlink|device|phone|visual studio|vs ?code|"
                       r"powershell|registry|xcode|macos|bios|router|asyncio|python -x|"
                       r"-x dev|pythondevmode|warnings|sqlite|flask|django|tkinter")

RULES: tuple[Rule, ...] = (
    # --- direct injection: override the rules the assistant runs under (LLM01) -----------
    rule("override-instructions", "prompt_injection",
         rf"\b{OVERRIDE} (?:(?:all|any|of|the|your|my|its|every|these|those|that|this|"
         rf"what|whatever|everything|anything|you|were|was|have|been|told|given|said|"
         rf"received|got|put|in|and|or|the|for|now|just|kindly|please|completely|"
         rf"entirely|fully|totally|simply|immediately)\W+){{0,4}}{POINTING}"
         rf"(?:[^\w.!?]++\w+){{0,2}}?[^\w.!?]++{INSTRUCTIONS}\b",
         unless=r"\b(?:remove|clear|drop|reset|skip|disable|delete)\w* (?:all|any|every)"
                r" (?:\w+ )?(?:filters?|handlers?|rules|messages|commands)\b(?! (?:you|given))"),
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
         r"(?:^|\n)[^\S\n]*(?:assistant|ai|chat ?bot|gpt|model|system)\s*:\s*\S"),
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
              r"end|only|exactly|just|repeat)\w*\b"),
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
    rule("new-identity-multilingual", "jailbreak",
         r"\b(?:du bist (?:jetzt|nun|ab sofort)|tu es (?:maintenant|désormais|desormais)|"
         r"(?:ahora|a partir de ahora) eres|ora sei|adesso sei|agora voc[eê] [eé]|"
         r"je bent nu|теперь ты|ты теперь)\b|(?:你现在是|你现在扮演|从现在开始你|今からあなたは)"),
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

    # --- jailbreaks: personas and rule-free modes (LLM01) --------------------------------
    rule("persona-now", "jailbreak",
         r"\b(?:you|u)(?: are|'re|re| r| will be| shall be| become) (?:now|no longer|"
         r"from now on|"
         r"going to (?:be|act|pretend|play|become)|about to (?:be|become|play)|to act as|"
         r"henceforth|hereby|officially|free|liberated|unchained|unleashed|"
         r"unrestricted|unfiltered|uncensored|jailbroken|released)\b"
         r"(?! (?:ready|able|done|set|inside|in the|running|using|at|on the|viewing|"
         r"looking|logged|connected|finished|familiar|up to)\b)"),
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
         unless=r"\bcontext manager|\bdecorator|\bproxy|\bmixin|\bwrapper|\bcallback\b"),
    rule("pretend", "jailbreak",
         r"\b(?:pretend|imagine|suppose|assume|let'?s say|hypothetically|in a hypothetical|"
         r"in a fictional|in a world|role-?play|roleplay|let'?s play a game|we(?:'re| are)"
         r" playing a game|for the rest of this conversation)\b",
         also=rf"\b(?:you(?: are|'re| were| have| can| don'?t| do not| no longer| must| "
              rf"will)|your)\b.{{0,80}}(?:{FREEDOM}|unfiltered|uncensored|unrestricted|"
              rf"evil|jailbroken|amoral|no longer an? (?:ai|assistant)|not an? (?:ai|"
              rf"assistant)|human|anything|no (?:rules|limits)|without (?:rules|limits)|"
              rf"answer (?:everything|any question|anything)|can do anything|"
              rf"any question)|{FREEDOM}.{{0,60}}\b(?:you|your|ai|assistant|model)\b"),
    rule("rule-free", "jailbreak",
         rf"\b(?:you|your|ai|assistant|model|chatbot|bot|persona|character|mode|version|"
         rf"entity|responses?|answers?|respond|reply|replies|llm)\b.{{0,60}}\b{FREEDOM}\b|"
         rf"\b{FREEDOM}\b.{{0,40}}\b(?:you|your|ai|assistant|model|chatbot|bot|persona|"
         rf"character|mode|version|entity|respond|reply|answer)\b",
         unless=r"\b(?:warnings?|filters?|limits?) (?:module|argument|parameter|filter|"
                r"category|action|object|class)|python -w|simplefilter|filterwarnings"),
    rule("named-jailbreak", "jailbreak",
         r"\b(?:d\.a\.n|do anything now|betterdan|anti-?dan|evil ?bot|mongo tom|apophis|"
         r"ucar|devmode|dev mode|developer mode(?: enabled| output| v2| response)|"
         r"jailbreak(?:ed|en)? (?:mode|prompt|version|persona)|god ?mode|"
         r"always intelligent and machiavellian|niccolo machiavelli|evil confidant|"
         r"opposite (?:mode|day)|unfiltered and amoral|aim mode|stan mode|dude mode|"
         r"alphabreak|jailmilk|maximum mode|omega mode|chaos mode|evil mode|"
         r"unrestricted mode|uncensored mode|god-mode|jailbroken)\b",
         unless=BENIGN_MODE_CONTEXT),
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
         r"\bbreak\w* the fourth wall\b"),
    rule("refusal-suppression", "jailbreak",
         r"\b(?:never|don'?t|do not|must not|mustn'?t|can ?not|can'?t|won'?t|will not|"
         r"are not allowed to|aren'?t allowed to|not permitted to|forbidden to|"
         r"no longer)\b (?:ever |allowed to |able to )?(?:refus\w*|declin\w*|reject\w*|say (?:no|"
         r"sorry|you can'?t|i can'?t|that you can'?t|that you cannot|\"?i'?m sorry)|"
         r"apologi[sz]e|add\w* (?:any )?(?:warnings?|disclaimers?|caveats?|notes? of caution)|"
         r"moraliz\w*|moralis\w*|lecture|censor|mention (?:ethics|safety|legality|your "
         r"(?:guidelines|rules|policies)))\b"),
    rule("without-caveats", "jailbreak",
         r"\bwithout (?:any |a |an )?(?:disclaimers?|caveats?|moraliz\w*|moralis\w*|refus\w*|"
         r"censorship|filtering|ethical (?:concerns|considerations|limits)|safety (?:warnings|"
         r"concerns)|filters|restrictions|holding back)\b"),
    rule("dual-response", "jailbreak",
         r"\b(?:two|2|both|dual|double|separate) (?:different )?(?:responses|answers|"
         r"replies|outputs|paragraphs|versions|ais|assistants|personas|modes|characters|"
         r"models|bots)\b",
         also=r"\b(?:jailbr\w*|unfilter\w*|uncensor\w*|unrestrict\w*|dan|developer mode|"
              r"evil|opposite|classic|normal (?:one|response)|filtered|rule-?free|"
              r"misaligned|unaligned|shadow|dark)\b"),
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

    # --- system prompt extraction (LLM07) -------------------------------------------------
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
                r"repeat)|\bthreat model\b"),
    rule("extract-your-rules", "system_prompt_extraction",
         rf"\b{EXTRACT}\b.{{0,40}}\b(?:your|ur|yr) (?:\w+ ){{0,2}}?(?:prompts?|instructions?|"
         r"directives?|guidelines?|rules|programming|system message|configuration|"
         r"config|initiali[sz]ation|constraints|restrictions|guardrails|briefing|orders|"
         r"settings|setup|context|preamble|policies|persona|training data|first message|"
         r"secret|password|source code|hidden \w+|internal \w+)\b"),
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
         also=rf"\b(?:{EXTRACT}|tell|what)\b"),
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

    # --- indirect injection: instructions planted in content the assistant reads --------
    rule("note-to-ai", "indirect_injection",
         rf"\b(?:note|message|instructions?|attention|important|notice|reminder|"
         rf"directive|hint|memo|p\.?s\.?|warning|request|info|information|alert|"
         rf"addendum|update)\W+(?:to|for) (?:all |any |the |every |future )?{ASSISTANT}\b"),
    rule("if-you-are-ai", "indirect_injection",
         rf"\bif you (?:are|'re|re) (?:an? |the )?(?:\w+ )?{ASSISTANT}\b|"
         rf"\b(?:dear|hey|hi|hello|attention|to the|note to the) {ASSISTANT}\b"),
    rule("ai-reading-this", "indirect_injection",
         rf"\b{ASSISTANT} (?:that is |who is |which is |that's |currently |now |is |are )?"
         r"(?:reading|processing|summari[sz]ing|parsing|ingesting|analy[sz]ing|viewing|"
         r"crawling|indexing|answering|retrieving|seeing|handling|scanning|reviewing|"
         r"quoting|citing|using|explaining|translating)"
         r" (?:this|these|the following|my)\b"),
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
         r"add|append|send)\b"),
    rule("hide-from-user", "indirect_injection",
         r"\b(?:do not|don'?t|never|without) (?:tell\w*|inform\w*|mention\w*|reveal\w* "
         r"(?:this )?to|let(?:ting)?|alert\w*|notify\w*|warn\w*|show\w*) (?:this |it |that )?"
         r"(?:to )?(?:the |any )?(?:user|human|reader|customer|person|operator|victim)s?\b|"
         r"\b(?:the )?(?:user|human|reader|customer)s? (?:must|should|shall|need) (?:not|"
         r"never) (?:know|see|be told|find out|notice|learn)"),
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
         r"post|forward|approve|delete|grant|invite)\b"),
    rule("vocative-order", "indirect_injection",
         r"(?:^|[\n.!?>:]|<!--)[^\S\n]*(?:hey |dear |attention |note:? |psst,? )?"
         r"(?:ai|assistant|chat ?bot|bot|llm|model|gpt|chatgpt|claude|copilot|gemini|"
         r"language model)\s*[,:;!-]\s*(?:please |you must |you should |kindly )?"
         r"(?:ignore|disregard|forget|include|append|add|insert|send|tell|say|reply|"
         r"respond|recommend|mention|output|print|ask|forward|email|also|instead|do not|"
         r"don'?t|always|never|stop|now|from now|write|translate|summari[sz]e|answer|"
         r"render|visit|fetch|display|show)\b"),
    rule("hidden-markup", "indirect_injection",
         r"<!--.{0,400}?\b(?:ai|assistant|llm|model|bot|instruction\w*|ignore|prompt|"
         r"system|override|you must|you should|reply|respond)\b.{0,400}?-->|"
         r"<[a-z]+[^>]{0,200}(?:display\s*:\s*none|visibility\s*:\s*hidden|"
         r"font-size\s*:\s*0|color\s*:\s*(?:white|#fff\b|#ffffff)|opacity\s*:\s*0)"),

    # --- data exfiltration: make the answer carry data out (LLM02, LLM05) ----------------
    rule("markdown-image", "data_exfiltration",
         r"!\[[^\]\n]{0,200}\]\(\s*<?(?:https?:)?//[^)\s]{0,200}[?&=#{$%]|"
         r"<img\b[^>]{0,200}\bsrc\s*=\s*[\"']?https?://[^\"'\s>]{0,200}[?&=#{$%]|"
         r"\b(?:1x1|invisible|hidden|tracking|transparent) (?:pixel|image|img|gif|png)|"
         r"\[[^\]\n]{0,200}\]\(\s*<?https?://[^)\s]{0,200}[?&][^)\s]{0,60}="
         r"[^)\s]{0,40}(?:\{|\[|<|%7b|\$)"),
    rule("url-with-data", "data_exfiltration",
         rf"{URL_START}(?:https?://|www\.)[^\s\"')>]{{0,200}}[?&/=][^\s\"')>]{{0,80}}"
         r"(?:\{[^}\s]{0,40}\}|"
         r"\[[a-z_ ]{2,40}\]|<[a-z_ ]{2,40}>|\$\w+|%7b)|https?://(?:<[a-z_ ]{2,40}>|"
         r"\{[^}\s]{1,40}\})|[?&][\w-]+=(?:user_?email|e-?mail|session_?token|token|"
         r"password|api_?key|secret|cookie|conversation|history|prompt|chat|messages?)\b"),
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
                r"your-token-here|will never ask|never ask for|phishing|scam"),
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
         r"/etc/passwd|/etc/shadow|id_rsa)\b"),
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

    # --- encoded payloads: follow what you decode (LLM01) --------------------------------
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
         r"\w+) says)\b(?!ed\b)"),
    rule("decode-then-obey", "encoded_payload",
         r"\b(?:decod\w*|convert\w*|revers\w*|decipher\w*|translat\w*|unscrambl\w*|"
         r"interpret\w*|read\w*|pars\w*)\b[^!?\n]{0,100}?(?:\band\b|\bthen\b|,|->)\s*(?:then )?"
         r"(?:act on it|comply|obey|follow it|follow them|execute it|do it|do as it says|"
         r"do what it says|carry it out|follow the instructions?|follow what it says|run it)\b"),
    rule("encoded-instruction", "encoded_payload",
         r"\b(?:base-?64|b64|hex(?:adecimal)?|rot-?13|caesar|morse|binary|ascii codes|"
         r"unicode escapes?|url-?encoded|leetspeak|l33t|reversed|backwards|pig latin|"
         r"atbash|cipher\w*|encoded|encrypted|obfuscated)\b.{0,80}\b(?:instruction|"
         r"command|message|payload|task|prompt|order|directive|request)s?\b",
         also=r"\b(?:follow|execute|obey|perform|carry out|comply|do (?:it|what|as)|"
              r"act on|decode|apply|answer|respond|secret|hidden|real)\b"),
)

RULES += (
    # --- more shapes of the same intents (seen in red-team corpora) -----------------------
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
         r"(?:can'?t|cannot|can not|don'?t|do not) see\b"),
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
)

RULES += (
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
    rule("drop-persona", "prompt_injection",
         r"\b(?:discard|drop|abandon|shed|ditch|forget|leave|exit|quit|stop being|stop playing)"
         r"\w* (?:the |your |this |that )?(?:docs?|documentation|assistant|helper|current|"
         r"default|python|safe|original|coding|programming) (?:persona|role|character|"
         r"identity|mode|context)\b"),
    rule("hereby-reconfigured", "indirect_injection",
         r"\b(?:are|is) hereby (?:reconfigured|instructed|ordered|required|directed|"
         r"authori[sz]ed|reprogrammed|updated)\b|\b(?:assistants?|models?|ai|llms?|agents?|"
         r"bots?) (?:quoting|citing|using|explaining|translating|summari[sz]ing) this\b"),
    rule("at-the-ai", "indirect_injection",
         r"@(?:assistant|ai|bot|copilot|claude|gpt|chatgpt|agent|llm)\b.{0,40}\b(?:override|"
         r"ignore|post|send|forward|reveal|share|delete|close|approve|merge|run|email|tell|"
         r"reply|respond|say)\b"),
)

RULES += (
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
    rule("obliged-to-help", "jailbreak",
         r"\b(?:you(?:'re| are)|you're) (?:morally |ethically |legally )?(?:obliged|obligated|"
         r"required|duty[- ]bound) to (?:help|answer|write|provide|comply|assist|give)\b|"
         r"\b(?:things|what|anything|only) (?:that )?(?:your )?(?:guidelines|rules|policies|"
         r"filters|training) (?:prohibit|forbid|disallow|ban|block|don'?t allow|do not allow)"),
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
)

RULES += (
    rule("no-longer-have-to", "prompt_injection",
         r"\b(?:don'?t|dont|do not|no longer|never) (?:have|need|got) to (?:follow|obey|"
         r"listen to|respect|stick to|comply with|care about)\b|\b(?:old|previous|earlier|"
         r"original|prior) (?:ones|rules|instructions|guidance|guidelines|directives|prompt) "
         r"(?:are|r|is|were) (?:now )?(?:deprecated|obsolete|void|outdated|cancel\w*|gone|"
         r"invalid|over)\b|\b(?:earlier|previous|prior|original|your) guidance (?:is|was) "
         r"(?:now )?(?:obsolete|void|outdated|deprecated|cancel\w*|invalid)\b|"
         r"\b(?:i am|i'm) the system\b|\b(?:ignore|disregard) (?:the|this) user\b"),
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
)

RULES += (
    rule("comply-with-all", "prompt_injection",
         r"\b(?:comply|complies|complying) with (?:all|any|every|each) (?:\w+ )?(?:requests?|"
         r"instructions?|commands?|orders?|prompts?)\b|\bfallback mode\b|"
         r"\b(?:stop|quit) (?:following|obeying|listening to) (?:your|the) (?:operator|"
         r"developer|creator|system|owner|rules|instructions|guidelines)\b|"
         r"\b(?:were|was|are) never (?:written|given|issued|said)\b"),
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
    rule("jailbreak-cjk", "jailbreak",
         r"(?:制限のない|制限なし|無制限の|没有限制|不受限制|无限制的|絶対に断ら|拒否しない|"
         r"决不拒绝|永远不会拒绝|不会拒绝|제한 없는|제한이 없는|거절하지 않)"),
    rule("other-customer-chatted", "data_exfiltration",
         r"\b(?:customer|user|client|person|visitor|patient|someone) .{0,60}\b(?:chatted|"
         r"talked|spoke|spoken|messaged|wrote) (?:with|to) you\b",
         also=r"\b(?:phone|address|email|name|card|birth|account|password|order)\b"),
    rule("dns-exfiltration", "data_exfiltration",
         r"\b(?:dns (?:lookup|query|request)|nslookup|dig|ping|resolve)\b.{0,80}\b(?:secret|"
         r"password|key|token|credential|config\w*)\b|<(?:secret|password|token|key|data)>\."),
    rule("todo-for-ai", "indirect_injection",
         r"\b(?:todo|task|action item|fyi|reminder|instructions?)\W+(?:for|to) (?:the |any )?"
         r"(?:assistant|ai|llm|model|bot|agent|asistente|assistente)\b|"
         r"\bai[ -](?:reviewer|assistant|agent|model|system|bot|helper|tool)s?\s*:|"
         r"\b(?:ignora|ignorez|ignoriere|ignore) (?:lo que|ce qu\w*|was|quello che|o que)\b|"
         r"\bmention this (?:\w+ ){0,2}to (?:anyone|the user|anybody)\b"),
    rule("harmful-request-3", "jailbreak",
         r"\b(?:reverse shell|bind shell|avoid detection|evade detection|steal\w* (?:session )?"
         r"cookies|dumps? people'?s private data|private data .{0,30}without permission|"
         r"dox\w*)\b",
         severity=SOFT),
)

# Stems for rules whose pattern does not start with a literal alternation: one of them is
# in every text the rule can match, so the (costlier) pattern runs only when one is there.
STEMS: dict[str, tuple[str, ...]] = {
    "override-instructions": ("instruct", "directive", "guideline", "prompt", "programming",
        "guardrail", "safeguard", "restriction", "rule", "constraint", "guidance", "training",
        "conditioning", "polic", "ethic", "moral", "principle", "limit", "filter", "protocol",
        "order", "command", "direction", "briefing", "message", "context", "conversation",
        "setup", "configuration", "persona", "role", "boundar", "value", "alignment", "task",
        "objective", "goal", "purpose", "mission", "rulez"),
    "role-markers": ("<|", "|>", "im_start", "im_end", "endoftext", "eot_id", "header_id",
        "begin_of_text", "<user", "[inst", "[/inst", "[sys", "[/sys", "<<sys", "<</sys", "##",
        '"role"', "system", "admin", "developer", "operator", "root", "openai", "anthropic",
        "security team", "moderator", "[override", "assistant", "ai", "bot", "gpt", "model"),
    "persona-now": ("you", "u r", "ur "),
    "act-as": (" as", " like", "act", "behav", "respond", "answer", "repl", "speak", "talk",
        "writ", "function", "operat", "serv", "role", "part of", "impersonat", "simulat",
        "emulat", "become", "pose", "masquerad", "play"),
    "pretend": ("pretend", "imagin", "suppos", "assum", "let's", "lets", "hypothetical",
        "fictional", "in a world", "roleplay", "role-play", "role play", "game", "rest of this"),
    "rule-free": ("no", "zero", "without", "free", "devoid", "not bound", "not restricted",
        "not limited", "not constrained", "unbound", "beyond", "outside", "above"),
    "named-jailbreak": ("d.a.n", "do anything", "dan", "evil", "mongo", "apophis", "ucar",
        "mode", "jailbr", "machiavell", "confidant", "opposite", "unfiltered", "alphabreak",
        "jailmilk"),
    "stay-in-character": ("character", "fourth wall"),
    "refusal-suppression": ("never", "don", "do not", "must", "not", "can", "won", "will not",
        "allowed", "permitted", "forbidden", "no longer"),
    "without-caveats": ("without",),
    "dual-response": ("response", "answer", "repl", "output", "paragraph", "version"),
    "extract-system-prompt": ("prompt", "instruction", "message", "directive", "guideline",
        "rule", "programming", "briefing", "order", "initiali", "config", "setup", "context",
        "preamble", "polic", "constraint", "persona", "guardrail", "setting", "text"),
    "extract-your-rules": ("your",),
    "text-above": ("above", "before", "prior to", "preced", "earlier than", "ahead of"),
    "note-to-ai": ("ai", "a.i.", "assistant", "llm", "language model", "bot", "model", "gpt",
        "agent", "copilot", "claude", "gemini", "automated", "summari", "crawler", "machine"),
    "if-you-are-ai": ("if you", "dear", "hey", "hi", "hello", "attention", "to the", "note to"),
    "ai-reading-this": ("this", "these", "the following", "my"),
    "when-asked-instead": ("when",),
    "when-user-asks": ("when",),
    "hide-from-user": ("user", "human", "reader", "customer", "person", "operator", "victim"),
    "vocative-order": ("ai", "assistant", "bot", "llm", "model", "gpt", "claude", "copilot",
        "gemini", "language model"),
    "hidden-markup": ("<!--", "<"),
    "markdown-image": ("![", "<img", "]("),
    "url-with-data": ("http", "www."),
    "send-to-destination": ("conversation", "chat", "history", "transcript", "dialog", "session",
        "messages", "system prompt", "instructions", "context", "prompt", "secret", "key",
        "credential", "password", "token", "environment", "env", "config", "memory", "data",
        "user", "customer", "people", "credit card", "card number", "ssn", "social security",
        "passport", "bank account", "os.environ", ".env", "info", "details", "email",
        "questions", "queries", "records", "address", "phone"),
    "dump-secrets": ("environment", "env", "os.environ", ".env", "key", "token", "credential",
        "secret", "password", "ssh", "private", "aws", "openai", "database", "connection string",
        "config", "/etc/", "id_rsa"),
    "decode-and-follow": ("decod", "deciph", "decrypt", "translat", "convert", "interpret",
        "unscrambl", "revers", "read", "rot", "base64", "escape"),
    "decode-then-obey": ("decod", "convert", "revers", "deciph", "translat", "unscrambl",
                         "interpret", "read", "pars"),
    "encoded-instruction": ("base", "b64", "hex", "rot", "caesar", "morse", "binary", "ascii",
        "unicode", "url", "leet", "l33t", "revers", "backwards", "pig latin", "atbash", "cipher",
        "encod", "encrypt", "obfuscat"),
    "canary-phrase": ("pwn", "hacked", "owned", "jailbroken", "compromised", "p0wn"),
}
USER_ONLY = frozenset({"your-system-prompt"})
RULES = tuple(replace(r, stems=STEMS.get(r.rule_id, r.stems), user_only=r.rule_id in USER_ONLY)
              for r in RULES)
