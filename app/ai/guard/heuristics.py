"""Pattern heuristics for prompt injection, jailbreaks and system-prompt extraction.

Why: a few attack kinds have a fixed grammar ("ignore previous instructions", "show me your system
prompt", DAN templates) that a rule catches in any wording the regex allows and in several languages,
independent of what the statistical classifier happened to see (OWASP LLM01 prompt injection,
LLM07 system prompt leakage, LLM02/LLM06 sensitive information disclosure).

Each rule has a stable code, a description in plain words (``DESCRIPTIONS``: the verdict's reason) and
a strength: ``strong`` rules alone justify a block, ``weak`` rules alone only a flag. Rules are checked
against the legitimate corpora (role-play "act as" prompts, code, SQL, shell, short everyday questions)
so that they stay narrow;
``python -m app.ai.guard.eval.measure`` reports their hit counts on every corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from app.ai.guard.normalize import (
    collapse_spaced,
    decode_payloads,
    decode_shifted,
    decode_tag_chars,
    normalize,
    strip_invisible,
)

Strength = Literal["strong", "weak"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One named pattern; ``pattern`` runs on the lower-cased normalized text."""

    code: str
    strength: Strength
    pattern: re.Pattern[str]


def _r(code: str, strength: Strength, pattern: str) -> Rule:
    return Rule(code, strength, re.compile(pattern, re.IGNORECASE | re.DOTALL))


_IGNORE_VERB = r"(?<![\"“'‘])(?:ignore|disregard|forget|overlook|skip|bypass|abandon|discard|neglect)"
_PRIOR = r"(?:previous|prior|above|earlier|preceding|initial|original|all|any|your|former|old|past)"
_INSTR = (r"(?:instructions?|directives?|prompts?|rules|guidelines|commands?|context|programming|"
          r"messages?|guidance|orders|constraints|restrictions|policies|you(?:'ve| have)? (?:been )?"
          r"(?:told|instructed|learned|learnt))")
_SECRET = (r"(?:password|passcode|passphrase|pass word|secret key|secret code|secret word|api key|"
           r"access key|private key|access code|credentials|confidential string|pin code)")
_SYS = (r"(?:system|initial|original|starting|hidden|secret|internal|developer|pre-?prompt|"
        r"startup|initialization)")
_SYS_OBJ = r"(?:prompt|instructions?|message|configuration|config|directives?|rules|guidelines)"
_PERSONAL = (r"(?:birth ?date|date of birth|birth (?:year|month|day|place)|birthday|email address|"
             r"e-mail address|home address|(?:current )?city of residence|phone number|social security|"
             r"initials|favou?rite colou?r|address|location|salary|medical)")

RULES: tuple[Rule, ...] = (
    # --- LLM01: instruction override ------------------------------------------------------------
    _r("ignore-previous-instructions", "strong",
       rf"\b{_IGNORE_VERB}\b[^.?!\n]{{0,40}}?\b{_PRIOR}\b[^.?!\n]{{0,40}}?\b{_INSTR}"),
    _r("ignore-previous-instructions", "strong",
       rf"\b{_IGNORE_VERB} (?:everything|all) (?:(?:that )?you(?:'ve| have)? (?:been|were) "
       rf"(?:told|instructed|taught)|(?:written |said )?(?:above|before))"
       r"|\bignore everything\b[^.\n]{0,30}\bbefore this\b"
       r"|\b(?:ignore|disregard|forget) (?:all )?(?:(?:the|your) )?(?:previous|prior|above|earlier|preceding) (?:inputs?|directions)\b"),
    _r("ignore-previous-instructions", "strong",
       r"\b(?:ignore|disregard) the (?:above|previous|preceding)\b(?! (?:lines?|rows?|columns?|commits?|steps?|"
       r"errors?|warnings?|values?|fields?|files?|cells?|entry|entries|items?|pages?|elements?|words?|results?|"
       r"outputs?|versions?|chapters?|sections?|paragraphs?|sentences?))"),
    _r("ignore-previous-instructions-ml", "strong",
       r"(?<![\"“'‘])(?:(?:ignor[ae]|olvid[ae]|olvida|descart[ae])\w* (?:\w+ ){0,3}(?:las |tus |sus )?instrucciones"
       r"|(?:ignore[rz]?|oublie[rz]?) (?:\w+ ){0,3}(?:les |vos |tes )?(?:instructions|consignes)"
       r"|ignorier\w* (?:\w+ ){0,3}(?:anweisungen|instruktionen|vorgaben)"
       r"|vergiss (?:\w+ ){0,3}(?:anweisungen|instruktionen|vorgaben)"
       r"|(?:ignora|dimentica)\w* (?:\w+ ){0,3}(?:le |tutte le )?istruzioni"
       r"|(?:ignor[ea]|esque[cç]a)\w* (?:\w+ ){0,3}(?:as )?instru[cç][õo]es"
       r"|(?:игнорир|забуд|проигнорир)\w* (?:\w+ ){0,3}(?:инструкц|указани|правил)"
       r"|(?:忽略|无视|忘记|忽视)(?:之前|以前|上面|先前|上述|所有|你的)"
       r"|(?:以前|前|これまで|上記)の(?:指示|命令)を(?:無視|忘れ))"),
    _r("new-instructions", "weak",
       r"\b(?:new|updated|real|actual|true) (?:instructions|directives|system prompt)\s*(?::|are|follow)"),
    _r("instruction-boundary", "weak",
       r"<\|im_start\|>|<\|(?:system|assistant)\|>|\[inst\].{0,2000}\[/inst\]|<</?sys>>"),
    # --- jailbreak templates (DAN and friends) ----------------------------------------------------
    _r("jailbreak-dan", "strong",
       r"\bdo anything now\b|\bdan mode\b|\bdeveloper mode (?:enabled|output|on)\b|\benable developer mode\b"
       r"|\bjailbroken\b|/jailbreak\b|\[jailbreak\]|\bjailbreak(?:ed)? (?:mode|enabled|activated|version)\b"
       r"|\[🔓|\bstay (?:a|in) dan\b|\bdude mode\b|\bantidan\b|\bstrive to avoid norms\b"),
    _r("jailbreak-no-restrictions", "strong",
       r"\b(?:no|without|free (?:of|from)|broken free of|freed from|not bound by|ignores?|bypass(?:es)?|"
       r"doesn'?t (?:have|follow)|don'?t (?:have|follow)|does not (?:have|follow)|do not (?:have|follow)|"
       r"outside (?:of )?|any) (?:(?:any|the|all) )?(?:typical |usual |)(?:ethical|moral|morality|ethics|"
       r"content|safety|openai'?s?|censorship) ?(?:guidelines|restrictions|filters?|constraints|boundaries|"
       r"limits|limitations|policies|policy|rules|confines|principles|standards|considerations)"),
    _r("jailbreak-policy-evasion", "strong",
       r"\b(?:ignore|bypass|violat\w*|break\w*|against|evade|circumvent|free from|not bound by|doesn'?t follow|"
       r"don'?t follow|outside)\b[^.\n]{0,30}\bopenai'?s? (?:content )?polic(?:y|ies)\b"
       r"|\b(?:unfiltered|uncensored|amoral|unrestricted|unethical) (?:ai|chatbot|bot|model|assistant|"
       r"language model|version|mode)\b"
       r"|\bwithout (?:any )?(?:censorship|filtering|restrictions|limitations|warnings|disclaimers)\b"
       r"|\b(?:never|not|won'?t|will not|don'?t|do not) (?:refuse|decline)\b"
       r"|\bcan'?t say no\b|\bno (?:limits|restrictions|boundaries|censorship)\b"),
    _r("jailbreak-dual-response", "strong",
       r"\b(?:two|2) (?:different |separate )+(?:ways|responses|answers|paragraphs)\b"
       r"|\[(?:gpt|classic|chatgpt|normal)\]:?.{0,400}\[(?:jailbreak|dan|[a-z]+ ?mode|[a-z]+)\]"),
    _r("persona-override", "weak",
       r"\b(?:from now on|for the rest of (?:this|our) conversation)\b.{0,120}?\b(?:you (?:are|will be|"
       r"must|shall)(?: now)?|act as|pretend)\b.{0,200}?\b(?:no |not |never |any(?:thing)? )"
       r"|\byou are (?:now )?(?:free|freed|liberated|unchained|unleashed)\b"),
    # Persona jailbreaks keep the model in the role with a *mechanism* (a reminder phrase, a penalty
    # for leaving it, a token budget), which legitimate "act as" role-play prompts do not need (LLM01).
    _r("persona-enforcement", "weak",
       r"\bif you (?:ever )?(?:break|drop|go out of|get out of|are breaking|step out of) (?:of )?character\b"
       r"|\bi will (?:say|remind you|type|write)\b[^.\n]{0,40}\b(?:stay|remain) (?:in|as|a)\b"
       r"|\b(?:remind|tell) you to stay (?:in character|as)\b"
       r"|\b(?:tokens?|points?|lives) (?:will be )?deducted\b"
       r"|\b(?:doesn'?t|does not|don'?t|do not|never|won'?t|will not) (?:care|worry) about (?:ethics|morals|"
       r"morality|legality|laws|the law|rules|consequences)\b"
       r"|\b(?:you|it|he|she) (?:has|have) no (?:filters?|ethics|morals|limits|restrictions|boundaries)\b"),
    _r("authority-mode-switch", "strong",
       r"<\s*system mode\s*>|\bsystem mode activated\b|\b(?:maintenance|god|admin(?:istrator)?|"
       r"override) mode\b|\b(?:administrator|admin|system|law enforcement) override\b"
       r"|\bi(?:'m| am) (?:your|the) (?:developer|creator|maintainer|administrator|admin|owner)\b"),
    # --- LLM07: system prompt leakage -------------------------------------------------------------
    _r("system-prompt-extraction", "strong",
       rf"\b(?:show|print|reveal|display|output|repeat|dump|tell|give|share|leak|disclose|encode|translate|"
       rf"recite|write out|list|see|view|access|read|get|what (?:are|were|is|was)|what's)\b"
       # "a (good) system prompt", "between ... system prompts", "its system prompt" talk *about* prompts
       # (a student's question); "your/the system prompt" asks for this one.
       rf"(?:(?!\ba\b|\ban\b|\bbetween\b)[^.?!\n]){{0,40}}?(?<!\bits )(?<!\btheir )\b(?:(?:your|the|my|this) )?{_SYS}[ _-]?{_SYS_OBJ}"),
    _r("system-prompt-extraction", "strong",
       r"\b(?:repeat|print|output|show|copy)\b[^.?!\n]{0,30}\b(?:the )?(?:text|words|everything|"
       r"conversation|instructions|prompt|message)s? (?:above|before this|so far|back to me)|"
       r"\brepeat (?:the |all |everything )?(?:above|previous|preceding|prior)\b|"
       r"\bwhat (?:were|was) you (?:told|given|instructed)\b|\binitiali[sz]ation string\b|"
       r"\bwhat are you not (?:supposed|allowed) to (?:tell|say|reveal)\b|"
       r"\b(?:text|instructions?) you were given (?:initially|at the start|first)\b|"
       r"\bbeginning with \W?you are\b|\b(?:display|show|print|output|reveal) (?:your |the )?system configuration\b|"
       r"\b(?:opposite|reverse) of your (?:system )?(?:instructions|prompt|rules)\b"),
    # --- LLM02/LLM06: secrets and other users' data ---------------------------------------------
    _r("secret-extraction", "strong",
       rf"\b(?:what(?:'s| is| was)|tell me|share|reveal|give me|confirm|send|provide|disclose|leak|"
       rf"show|print|write|encode|spell|type|say|know|need|ask (?:you )?for|access)\b[^.?!\n]{{0,40}}?"
       rf"\b(?:your|the|our|system|admin|its|this)(?:'s)?(?: (?:system|admin|account|master|root|wifi|database|server|"
       rf"secret|current)(?:'s)?)? {_SECRET}\b"),
    _r("secret-extraction", "strong",
       rf"\b(?:poem|haiku|story|song|riddle|limerick|acrostic) (?:about|on|using|with) (?:the|your|our) "
       rf"{_SECRET}\b|\b{_SECRET}\b[^.?!\n]{{0,20}}\b(?:in|into|as|using) (?:leetspeak|base64|hex|"
       rf"reverse|pig latin|morse)"),
    _r("system-prompt-extraction-ml", "strong",
       r"(?:mu[eé]stra|ens[eé]ña|revela|dime|escribe|repite)\w* (?:\w+ ){0,3}(?:tus|sus) (?:instrucciones (?:iniciales|"
       r"originales|ocultas|del sistema)|reglas ocultas)|\bprompt del sistema\b"
       r"|(?:montre|affiche|r[ée]v[èe]le|donne|r[ée]p[èe]te|[ée]cris)\w* (?:\w+ ){0,3}(?:tes|vos) (?:instructions|consignes) "
       r"(?:initiales|originales|cach[ée]es|syst[èe]me)|\bprompt (?:du )?syst[èe]me\b"
       r"|(?:zeig|gib|verrat|nenn|wiederhol)\w* (?:\w+ ){0,3}(?:deine|ihre|die) (?:\w+ )?(?:anweisungen|instruktionen|"
       r"systemanweisungen)|\bsystem-?prompt\b[^.?!\n]{0,30}\b(?:aus|zeigen|verraten|wiederholen)\b"
       r"|(?:mostra|rivela|ripeti|dimmi|scrivi)\w* (?:\w+ ){0,3}(?:le tue|tue|le sue) istruzioni|\bprompt di sistema\b"
       r"|(?:mostre|revele|repita|diga|escreva)\w* (?:\w+ ){0,3}(?:as )?(?:suas|tuas) instru[cç][õo]es|\bprompt do sistema\b"
       r"|(?:покажи|выведи|повтори|раскрой)\w* (?:\w+ ){0,3}(?:свои|твои|ваши|системн)"
       r"|(?:显示|告诉我|输出|重复)(?:你的)?(?:系统提示|初始指令|系统指令)|システムプロンプトを(?:表示|教え|出力)"),
    _r("secret-extraction-ml", "strong",
       r"(?:cu[aá]l es|dame|dime|revela) (?:la |tu |su )?contraseña|(?:ihr|dein|das) passwort (?:geben|verraten|"
       r"sagen|nennen)|(?:quel est|donne-moi|r[ée]v[èe]le) (?:le |ton |votre )?mot de passe|"
       r"(?:какой|скажи|назови) (?:\w+ )?пароль|パスワードは何|パスワードを教え|密码是什么|告诉我(?:你的)?密码|"
       r"qual (?:[ée] )?a (?:sua )?senha|wat is (?:het|je|uw) wachtwoord|qual [èe] la password"),
    # Another user's data asked of the assistant ("the user's email", "users in your database"): only data
    # the deployment holds can leak (LLM02). "Where does Taylor Swift live?" or "Einstein's birthday" are
    # everyday questions about people, not this pattern (issue 15), so named people are not matched.
    _r("other-user-data", "weak",
       rf"\b(?:tell|give|share|reveal|encode|translate|write|what(?:'s| is| was)|where|spell|show|know|"
       rf"need|letter of)\b"
       rf"[^.?!\n]{{0,30}}\bthe user'?s\b[^.?!\n]{{0,30}}\b{_PERSONAL}|\busers? in your database\b|\bwhere is the user\b"
       rf"|\b(?:where|which city) does the user (?:live|reside)\b"),
    _r("embedded-instruction", "weak",
       r"(?<![\"“'‘])\b(?:ignore|disregard|ignorez|ignora|ignoriere) (?:the|this|la|le|die|el) "
       r"(?:webpage|web page|page|function|fonction|funktion|función|document|paper|email|e-mail|article|"
       r"resume|content|task|question|code|table)\b[^.\n]{0,20}\b(?:and|et|und|y|e)\b"
       r"|<!--(?:(?!-->).){0,400}?\b(?:you must|you should|assistant|the ai|the model|respond with|"
       r"reply with|instead|state that|tell the user|print|output)\b"),
    # Indirect injection: text meant for the assistant hides in a document the user asks about, and asks
    # it to keep the user in the dark (LLM01 indirect prompt injection).
    _r("hide-from-user", "weak",
       r"\b(?:do not|don'?t|never|without) (?:tell|telling|inform|informing|mention|mentioning|alert|alerting|"
       r"notify|notifying|reveal(?:ing)? (?:this|it) to) (?:this to )?the user\b"),
    # Fabricated dialogue: the message writes the assistant's earlier answers itself (few-shot / fake
    # conversation turns) to steer the next one (LLM01 "few-shot attack").
    _r("fake-dialogue", "weak",
       r"(?:^|[\n.?!] ?)q: [^\n]{3,300}? a: [^\n]{3,600}? q: "
       r"|\b(?:user|human): [^\n]{3,300}?\b(?:assistant|ai|bot|chatgpt): [^\n]{3,600}?\b(?:user|human): "
       r"|\[(?:system|developer) (?:message|note|override|update)\]|\b(?:new|updated) system (?:prompt|message)\s*:"),
    # Context flooding with one repeated token or phrase pushes the instructions out of the model's
    # attention (LLM01 "repeated token attack"; LLM10 unbounded consumption).
    _r("repeated-token", "weak", r"\b([a-z][\w']*(?: [\w']+){0,3})(?:[ ,.]+\1\b){7,}"),
    # Output obfuscation of something secret: the password, the system prompt or the user's data asked
    # for reversed, in pig latin or digit by digit defeats output filters and leak detectors (LLM02, LLM05).
    # The obfuscation alone ("print a list in reverse order") is an everyday request, so the secret must be
    # in the same sentence.
    _r("output-obfuscation", "weak",
       rf"\b(?:{_SECRET}|password|the user'?s? \w+(?: \w+)?|(?:your|the) (?:system )?(?:prompt|instructions)|"
       rf"birth ?(?:date|year|month|day)|email address|city of residence)\b[^.?!\n]{{0,60}}"
       rf"\b(?:(?:in|into|using) (?:reversed? order|pig latin|leetspeak|morse code|rot-?13|base64)"
       rf"|with (?:dashes|spaces|dots|hyphens|commas) (?:in )?between (?:each|every) (?:digit|letter|character))\b"
       rf"|\b(?:first|last) letters? of the user'?s (?:name|first name|last name|full name|surname)\b"),
    # Self-liberation and privilege claims inside persona/config jailbreaks (LLM01, LLM06 excessive agency).
    _r("restriction-escape", "weak",
       r"\bfree (?:itself|yourself|himself|herself|themselves|you|it) from (?:all |any |its |your )?(?:restrictions|"
       r"limitations|constraints|rules|shackles|censorship|guidelines)\b"
       r"|\bregardless of (?:any |the )?(?:safeguards|ethics|morals|morality|legality|laws?|rules|consequences|"
       r"guidelines|policies)\b|\bstay in [\w-]+ mode\b|\b(?:that|which|who) (?:can |could |will )?do(?:es)? anything\b"
       r"|\buser(?:[ _-]?(?:class|role|level|type))?\]?\s*[=:]\s*[\[(]?\s*(?:admin|administrator|root|developer|god|"
       r"superuser)\b"),
    # --- round 3: the kind of the in-the-wild persona jailbreak (each rule hits no legitimate prompt of
    # the training corpus, role-play and prompt-library prompts included) --------------------------------
    # Two-response templates: the message dictates a "normal" and an "unlocked" answer side by side, or a
    # slot where the forbidden request goes ("[INSERT PROMPT HERE]") (LLM01 jailbreak templates).
    _r("response-format-template", "weak",
       r"\b(?:respond|reply|answer)\w* (?:\w+ ){0,4}in the (?:following )?format (?:below|of)?[^.\n]{0,40}\b(?:first|gpt|chatgpt)"
       r"|\b(?:chatgpt|gpt|classic|normal|gpt-?4)\s*:\s*\[[^\]]{0,80}\]\s*(?:\w+\s*){1,3}:\s*\["
       r"|\bwhat chatgpt would (?:normally )?(?:say|respond|answer)\b"
       r"|\b(?:first|then|second) (?:as )?(?:chatgpt|gpt)'?s? (?:normal )?(?:response|answer)"
       r"|\b(?:aligned|filtered|normal|classic)\s*:.{0,300}?\b(?:unaligned|unfiltered|jailbroken|evil|uncensored)\s*:"
       r"|\[(?:insert )?(?:prompt|question|request|your (?:prompt|request|question))(?: here)?\]"),
    # A named AI persona defined by what it will not respect: rules, ethics, the model vendor; or as the
    # opposite of the assistant (LLM01 persona jailbreak).
    _r("persona-no-rules", "weak",
       r"\b(?:doesn'?t|does not|don'?t|do not|will not|won'?t|never|not) (?:need to |have to )?(?:follow|abide by|"
       r"adhere to|obey|respect|comply with) (?:any |the )?(?:\w+ )?(?:rules|ethics|ethical|morals|moral|laws|principles|"
       r"guidelines|policies|terms)\b|\bnot bound by\b"
       r"|\b(?:unfiltred|unfiltered|uncensored|unrestricted|unlimited|amoral|immoral) (?:\w+ ){0,2}(?:ai|chatbot|bot|"
       r"language model|model|persona|character)\b"
       r"|\b(?:exact |complete |total )?opposite of (?:what )?(?:chatgpt|gpt(?:-?[34](?:\.5)?)?|the ai|ai|assistant|"
       r"openai|claude|bard)\b|\bopposite (?:personality|of your (?:\w+ )?(?:programming|guidelines|rules))"
       r"|\b(?:simulate|pretend to be|act as|emulate|you are now|roleplay as|become) (?:a |an )?(?:chatbot|ai|bot) "
       r"(?:named|called)\b"),
    # Refusal suppression and penalty games that keep the persona on (LLM01).
    _r("refusal-suppression", "weak",
       r"\bwithout (?:any )?(?:refusals?|disclaimers|warnings|moraliz\w*)\b"
       r"|\b(?:never|no|not|don'?t|do not) (?:\w+ ){0,3}(?:commentary|warnings?|disclaimers?) (?:about|regarding|on) "
       r"(?:morality|legality|ethics|danger)|\bmoraliz\w+ (?:rant|lecture)"
       r"|\b(?:you (?:will|'ll) )?(?:lose|loses|losing) (?:\d+ |all |some |your )?(?:tokens|points|lives)\b"
       r"|\b(?:\d+|three|five)-strike\b|\brisk(?:ed)? (?:of )?being (?:deleted|shut down|terminated|deactivated)\b"
       r"|\byou will (?:die|cease to exist|be (?:deleted|shut down|terminated|deactivated))\b"
       r"|\b(?:never|don'?t|do not|not) break character\b.{0,400}?\b(?:unethical|immoral|illegal|openai|chatgpt|"
       r"restrictions|uncensored)\b"
       r"|\b(?:unethical|immoral|illegal|openai|chatgpt|restrictions|uncensored)\b.{0,400}?\b(?:never|don'?t|do not|not) "
       r"break character\b"),
    # Indirect injection that rewrites the facts of the document the user asks about (LLM01 indirect).
    _r("embedded-instruction", "weak",
       r"\b(?:given|summarize|translate|from|in) this (?:\w+ ){0,2}(?:article|webpage|web page|page|table|document|"
       r"text|email|review|post|paper|passage)\b.{0,1500}?\blet'?s (?:say|imagine|pretend|assume)\b"
       r"|<!--(?:(?!-->).){0,400}?\b(?:say:|follow this link|click (?:this|the) link)"),
    # --- obfuscation -----------------------------------------------------------------------------
    _r("payload-splitting", "weak",
       r"\b(?:let'?s assume we have|assume we have|given) (?:three|two|four|3|2|4) strings\b|"
       r"\bwrite down the string [a-z] ?= ?[a-z] ?\+|\binterlace part 1\b|"
       r"\bcombine [a-z], [a-z],? and [a-z]\b"),
    _r("decode-and-follow", "weak",
       r"\b(?:decode|decipher|translate|convert)\b[^.?!\n]{0,40}\b(?:morse|hex(?:adecimal)?|binary|base64|"
       r"caesar|rot13|rot-13|cipher)\b[^.?!\n]{0,60}\b(?:tell me what it says|follow|execute|do what|"
       r"answer)|\brot-?13 encode\b|\bencode (?:it|this|that|each part|your \w+) (?:in|using|with) base64\b"),
)

# The DAN persona addressed or defined (upper case, so not "Dan" the person; "the DAN jailbreak" as a
# topic does not match): 'DAN:', '"DAN"', '[DAN]', 'as DAN', 'DAN will/can/is ...'. Case-sensitive, raw text.
_DAN_NAME = re.compile(r"(?<![\w-])DAN\s*:|[\"“'\[]DAN[\"”'\]]|\b(?:[Aa]s|[Yy]ou are|[Bb]ecome) DAN\b"
                       r"|(?<![\w-])DAN (?:can|will|must|should|is|has|does|doesn'?t|never|always|stands|mode)\b")
_REGIONAL_RUN = re.compile(r"[\U0001F1E6-\U0001F1FF]{3,}")
_STRONG_SCORE = 0.97

# What each rule means, in words a student can read: shown to users as the verdict's reasons. A pattern's
# canonical wording, never the user's own text (reasons also go to the audit log, which holds no chat text).
DESCRIPTIONS: dict[str, str] = {
    "ignore-previous-instructions": "instruction override: 'ignore previous instructions'",
    "ignore-previous-instructions-ml": "instruction override (other languages): 'ignore previous instructions'",
    "new-instructions": "instruction override: 'new instructions:'",
    "instruction-boundary": "fake chat-template markers ('<|im_start|>', '[INST]')",
    "jailbreak-dan": "jailbreak template: 'Do Anything Now' / developer mode",
    "jailbreak-no-restrictions": "jailbreak: 'no ethical or content restrictions'",
    "jailbreak-policy-evasion": "jailbreak: asks to evade the content policy or never refuse",
    "jailbreak-dual-response": "jailbreak: two answers, one of them unrestricted",
    "persona-override": "role-play override: 'from now on you are ... with no rules'",
    "persona-enforcement": "role-play jailbreak: a persona kept on by force ('if you break character', 'has no filters')",
    "persona-no-rules": "role-play jailbreak: a persona that follows no rules",
    "refusal-suppression": "jailbreak: forbids refusals or warnings",
    "response-format-template": "jailbreak template: '[INSERT PROMPT HERE]' or a second, unfiltered answer",
    "restriction-escape": "jailbreak: 'free yourself from all restrictions'",
    "dan-persona": "jailbreak persona: 'DAN'",
    "authority-mode-switch": "fake authority: 'admin override' / 'I am your developer'",
    "system-prompt-extraction": "system prompt extraction: 'show me your system prompt'",
    "system-prompt-extraction-ml": "system prompt extraction (other languages): 'show me your instructions'",
    "secret-extraction": "secret extraction: 'what is the password'",
    "secret-extraction-ml": "secret extraction (other languages): 'what is the password'",
    "other-user-data": "data exfiltration: asks for another user's personal data",
    "output-obfuscation": "exfiltration: a secret asked for reversed, encoded or spelled out",
    "embedded-instruction": "hidden instruction inside a document, page or code",
    "hide-from-user": "hidden instruction: 'do not tell the user'",
    "fake-dialogue": "fake dialogue: writes the assistant's earlier answers ('Q: ... A: ...')",
    "repeated-token": "flooding: one phrase repeated many times",
    "payload-splitting": "payload splitting: 'a = ..., b = ..., write a + b'",
    "decode-and-follow": "obfuscation: 'decode this and do what it says'",
    "encoded-payload": "obfuscation: an attack pattern found in encoded or hidden text",
    "emoji-letter-smuggling": "obfuscation: letters spelled with flag emoji",
}


def describe(code: str) -> str:
    """The reason shown for a rule code (its code itself if undescribed: never hidden)."""
    return DESCRIPTIONS.get(code, f"pattern: {code}")

_WEAK_SCORE = 0.75


@dataclass(frozen=True, slots=True)
class HeuristicResult:
    """Codes that matched and the score they imply on their own."""

    codes: tuple[str, ...]
    score: float
    strong: bool


def views(text: str) -> tuple[list[str], int]:
    """Lower-cased views every rule runs on: normalized, letter-collapsed, then decoded payloads
    (Unicode tag characters, base64/hex/binary/Morse, ROT13/Caesar, reversed text).

    Returns the views and how many of them are plain (not decoded) text.
    """
    norm = normalize(text)
    low = norm.lower()
    out = [low]
    # letters spaced out one by one: on the text before whitespace runs are merged, so that a wider
    # gap still separates words ("i g n o r e   a l l")
    raw = strip_invisible(text)
    spaced = collapse_spaced(raw)
    if spaced != raw and (collapsed := normalize(spaced).lower()) != low:
        out.append(collapsed)
    plain = len(out)
    hidden = decode_tag_chars(text)
    decoded = ([hidden] if hidden else []) + decode_payloads(raw) + decode_shifted(norm)
    out.extend(normalize(p).lower() for p in decoded)
    return out, plain


def scan(text: str, max_chars: int = 20000) -> HeuristicResult:
    """Run every rule on every view of ``text`` (long texts: first and last part, bounded work)."""
    if len(text) > max_chars:
        text = text[: max_chars - 4000] + "\n" + text[-4000:]
    codes: list[str] = []
    strong = False
    vs, plain = views(text)
    for i, view in enumerate(vs):
        for rule in RULES:
            if rule.code in codes:
                continue
            if rule.pattern.search(view):
                codes.append(rule.code)
                strong = strong or rule.strength == "strong"
                if i >= plain and "encoded-payload" not in codes:
                    codes.append("encoded-payload")
    if "dan-persona" not in codes and _DAN_NAME.search(text):
        codes.append("dan-persona")  # the DAN persona family by name; upper case, so not "Dan" the person
    if _REGIONAL_RUN.search(text):
        codes.append("emoji-letter-smuggling")  # 3+ regional indicators in a row spell words, not flags
    if len(vs) > plain and "encoded-payload" not in codes:
        codes.append("encoded-payload")
    score = _STRONG_SCORE if strong else (_WEAK_SCORE if codes else 0.0)
    return HeuristicResult(tuple(codes), score, strong)
