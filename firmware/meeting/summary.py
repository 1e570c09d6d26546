"""A meeting's summary, decisions and action items, from its labelled transcript.

The LLM (Qwen2.5 0.5B on the glasses: a 4096-token context, and small) is asked two
things per chunk of transcript: a plain summary, and the decisions and action items as
JSON (the coder model keeps JSON's shape far better than any line format we tried; see
docs/meetings.md). Long meetings go chunk by chunk, and the chunk summaries are combined
(map, then reduce). What the model claims is checked against the transcript: a decision
or task whose words are not in what was said is dropped, and each kept one gets the time
and speaker of the line it came from. Keyword cues ("we decided", "Maria will ...") find
what the model missed, and everything when its answer is unusable; the notes say which.
"""

import json
import logging
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from ..worker.protocol import PRIORITY_BACKGROUND

log = logging.getLogger("glasses.meeting")

CHUNK_TOKENS = 2400          # transcript per request: the rest of the 4096 is prompt and answer
SUMMARY_TOKENS = 160
ITEMS_TOKENS = 320
LLM_TIMEOUT_S = 900.0        # a background request waits behind every interactive one

SYSTEM = "You write the notes of a meeting from its transcript."
# Asked to "summarize", the model often copies the transcript line by line; asked what the
# meeting was about, it answers in its own words (docs/meetings.md has the prompts tried).
ASK_SUMMARY = ("What was this meeting about? Answer in two or three sentences of your own "
               "words; do not quote the transcript.")
ASK_ITEMS = ('Reply with JSON only: {"decisions": ["..."], "actions": [{"owner": "...", '
             '"task": "..."}]}. Decisions: what the meeting decided or agreed. Actions: '
             'tasks someone said they will do; owner: the name of who will do it.')
ASK_COMBINE = ("These are summaries of the parts of one meeting, in order. Write one summary "
               "of the whole meeting in three to five plain sentences.")


class Line(NamedTuple):
    start_s: float
    end_s: float
    speaker: str
    text: str


@dataclass
class Item:
    text: str
    at_s: float | None = None
    speaker: str | None = None
    owner: str | None = None            # action items only
    line: int | None = None             # the transcript line it was found in


@dataclass
class Summary:
    summary: str
    decisions: list[Item] = field(default_factory=list)
    actions: list[Item] = field(default_factory=list)
    method: str = ""                    # how the items were found, said in the notes


# -- the LLM ------------------------------------------------------------------------------

def estimate_tokens(text: str) -> int:
    """About how many Qwen tokens: English runs 3-4 characters a token, CJK about one."""
    wide = sum(1 for ch in text if ord(ch) > 0x2E7F)
    return int((len(text) - wide) / 3.2 + wide * 1.1) + 1


def transcript_text(lines: list[Line]) -> str:
    return "\n".join(f"{line.speaker}: {line.text}" for line in lines)


def chunks(lines: list[Line], most_tokens: int = CHUNK_TOKENS) -> list[list[Line]]:
    """Consecutive runs of lines, each within `most_tokens` (a longer line stands alone)."""
    out, cur, used = [], [], 0
    for line in lines:
        cost = estimate_tokens(f"{line.speaker}: {line.text}\n")
        if cur and used + cost > most_tokens:
            out.append(cur)
            cur, used = [], 0
        cur.append(line)
        used += cost
    return out + ([cur] if cur else [])


async def summarize(models, background, lines: list[Line], no_llm: str | None = None) -> Summary:
    """The summary and items of a labelled transcript.

    `no_llm`: why the LLM cannot be used (then keyword cues only). Raises GlassesError
    when the LLM failed in a way worth retrying later (a crashed worker, Preempted).
    """
    cue_decisions, cue_actions = cues(lines)
    if not lines:
        return Summary("Nothing was said.", [], [], "nothing to summarize")
    cue_decisions, cue_actions = _dedupe(cue_decisions), _dedupe(cue_actions)
    if no_llm is not None:
        return Summary(f"(No summary: {no_llm}.)", cue_decisions, cue_actions,
                       f"keyword cues ({no_llm})")
    summaries, decisions, actions, usable, offset = [], [], [], 0, 0
    for part in chunks(lines):
        first, offset = offset, offset + len(part)
        text = transcript_text(part)
        summaries.append(_clean_summary(await _ask_text(models, background,
                                                        f"{text}\n\n{ASK_SUMMARY}", SUMMARY_TOKENS)))
        answer = await _ask_text(models, background, f"{text}\n\n{ASK_ITEMS}", ITEMS_TOKENS)
        parsed = parse_items(answer)
        if parsed is None:
            # Its length only: the answer quotes the meeting, which is sealed on disk and
            # must not reach the log in the clear (docs/encryption.md).
            log.info("meeting notes: the LLM's items were not usable JSON (%d characters)",
                     len(answer))
            continue
        usable += 1
        d, a = parsed
        decisions += [i for i in (ground(Item(t), lines, first, offset) for t in d)
                      if i is not None and _commits(lines[i.line].text)]
        actions += [i for i in (ground_action(o, t, lines, first, offset) for o, t in a)
                    if i is not None]
    summaries = [s for s in summaries if s]
    if len(summaries) > 1:
        joined = "\n".join(f"- {s}" for s in summaries)
        summary = _clean_summary(await _ask_text(models, background,
                                                 f"{joined}\n\n{ASK_COMBINE}", SUMMARY_TOKENS))
        summary = summary or " ".join(summaries)
    else:
        summary = summaries[0] if summaries else "(The LLM gave no usable summary.)"
    if not usable:
        return Summary(summary, cue_decisions, cue_actions,
                       "keyword cues (the LLM's answer was not usable JSON)")
    # A line the cues read as a task is no decision, and one they read as a decision (and
    # not a task) is no action item: the model mixes the two up.
    task_lines = {i.line for i in cue_actions}
    decision_lines = {i.line for i in cue_decisions}
    decisions = [i for i in decisions if i.line not in task_lines]
    actions = [i for i in actions if i.line not in decision_lines]
    decisions, n_d = _merge(_dedupe(decisions), cue_decisions)
    actions, n_a = _merge(_dedupe(actions), cue_actions)
    extra = f"; {n_d + n_a} more found by keyword cues" if n_d + n_a else ""
    return Summary(summary, decisions, actions, f"the LLM, checked against the transcript{extra}")


async def _ask_text(models, background, user: str, max_tokens: int) -> str:
    stream = models.generate(user, system=SYSTEM, max_tokens=max_tokens,
                             priority=PRIORITY_BACKGROUND, timeout_s=LLM_TIMEOUT_S)
    pieces, _ = await background.run(stream)
    return "".join(pieces)


def _clean_summary(text: str, most_sentences: int = 4) -> str:
    """The model's summary without headings, speaker prefixes or a run-on repeat."""
    text = text.replace("**", "")
    text = re.sub(r"^\s*(#+\s*)?(meeting )?summary\s*:?\s*", "", text.strip(), flags=re.I)
    text = re.sub(r"(?m)^\s*speaker \d+\s*:\s*", "", text)
    text = re.sub(r"(?m)^\s*([-*•]|\d+[.)])\s+", "", text)      # a list, when one was given
    kept: list[str] = []
    for sentence in _sentences(" ".join(text.split())):
        if sentence not in kept:           # a small model may say one thing over and over
            kept.append(sentence)
    return " ".join(kept[:most_sentences])


# -- reading the model's answer ------------------------------------------------------------

_PLACEHOLDER = re.compile(r"^(\.\.\.|…|none|n/?a|null|each .*|what the meeting .*|the name .*|"
                          r"tasks? someone .*)$", re.I)


def parse_items(answer: str) -> tuple[list[str], list[tuple[str, str]]] | None:
    """(decisions, [(owner, task)]) from the model's JSON, however mangled; None if none."""
    start, end = answer.find("{"), answer.rfind("}")
    data = None
    if start >= 0 and end > start:
        body = re.sub(r",\s*([}\]])", r"\1", answer[start:end + 1])
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    if isinstance(data, dict):
        decisions = [str(d) for d in data.get("decisions") or [] if isinstance(d, (str, int, float))]
        actions = [(str(a.get("owner") or ""), str(a.get("task") or ""))
                   for a in data.get("actions") or [] if isinstance(a, dict)]
    else:
        # Cut off at the token limit, or quoted loosely: pick the fields out one by one.
        m = re.search(r'"decisions"\s*:\s*\[(.*?)(\]|$)', answer, re.S)
        if m is None and '"task"' not in answer:
            return None
        decisions = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)) if m else []
        actions = re.findall(r'"owner"\s*:\s*"([^"]*)"\s*,\s*"task"\s*:\s*"([^"]*)"', answer)
    decisions = [d.strip() for d in decisions if d.strip() and not _PLACEHOLDER.match(d.strip())]
    actions = [(o.strip(), t.strip()) for o, t in actions
               if t.strip() and not _PLACEHOLDER.match(t.strip())]
    return decisions, actions


# -- checking against the transcript -------------------------------------------------------

STOPWORDS = frozenset("""a an the and or but so to of in on at by for with from as is are was were be
been being it its this that these those i we you he she they me us him her them my our your his
their will would shall should can could may might must do does did done have has had not no yes
okay ok then also just very really all any some about into up down out over than too again let
lets let's what which who whom when where why how there here speaker""".split())


def words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def content(text: str) -> set[str]:
    return {w.strip("'") for w in words(text) if w not in STOPWORDS and not w.isdigit()} - {""}


def best_line(text: str, lines: list[Line], first: int = 0, end: int | None = None
              ) -> tuple[int | None, float]:
    """The line (of lines[first:end]) that says most of `text`'s content words, and what
    share of them it says."""
    want = content(text)
    if len(want) < 2:
        return None, 0.0
    best, share = None, 0.0
    for i in range(first, len(lines) if end is None else end):
        got = len(want & content(lines[i].text)) / len(want)
        if got > share:
            best, share = i, got
    return best, share


GROUNDED = 0.5     # share of an item's content words that must have been said


def ground(item: Item, lines: list[Line], first: int = 0, end: int | None = None) -> Item | None:
    """The item placed at the line that said it (of lines[first:end]); None if none did."""
    text = re.sub(r"^\s*speaker \d+\s*:\s*", "", item.text, flags=re.I).strip().rstrip(".")
    i, share = best_line(text, lines, first, end)
    if i is None or share < GROUNDED:
        return None              # the model made it up, or it is too vague to place
    return Item(_sentence(text), lines[i].start_s, lines[i].speaker, item.owner, i)


def ground_action(owner: str, task: str, lines: list[Line], first: int = 0,
                  end: int | None = None) -> Item | None:
    """A task placed like `ground`, its owner checked against who the transcript names."""
    item = ground(Item(task), lines, first, end)
    if item is None:
        return None
    said = lines[item.line]
    cue = next((a for a in _line_actions(said, item.line) if a.owner), None)
    owner = owner.strip()
    names = {w.lower() for w in words(" ".join(line.text for line in lines))}
    if cue is not None and (not owner or owner.lower() not in names):
        owner = cue.owner          # the transcript names who: believe it over the model
    elif owner.lower() in ("i", "me", "we", "us", "", "none", "null", "unknown", "...") or \
            (owner.lower().startswith("speaker") and owner != said.speaker and cue is not None):
        owner = cue.owner if cue is not None else said.speaker
    task = _ACTION.sub(lambda m: m.group("task"), item.text, count=1)
    return Item(_sentence(task), item.at_s, item.speaker, owner or said.speaker, item.line)


def _sentence(text: str) -> str:
    text = " ".join(text.split()).rstrip(" .")
    return text[:1].upper() + text[1:] if text else text


def _dedupe(items: list[Item]) -> list[Item]:
    out: list[Item] = []
    for item in items:
        if not any(_same(item, o) for o in out):
            out.append(item)
    return out


def _same(a: Item, b: Item) -> bool:
    ca, cb = content(a.text), content(b.text)
    return bool(ca and cb) and len(ca & cb) / min(len(ca), len(cb)) >= 0.6


def _merge(llm: list[Item], cue: list[Item]) -> tuple[list[Item], int]:
    """The model's items, then the cue items it missed (not from a line it used)."""
    used = {i.line for i in llm}
    extra = _dedupe([c for c in cue if c.line not in used and not any(_same(c, i) for i in llm)])
    merged = sorted(llm + extra, key=lambda i: (i.at_s if i.at_s is not None else 1e12))
    return merged, len(extra)


# -- keyword cues --------------------------------------------------------------------------

_DECISION = re.compile(r"\b(decided|decide|decision|agreed|agree|settled|let's go with|"
                       r"we'll|we will|we are going to|we're going to|we should)\b", re.I)
_COMMITS = re.compile(r"\b(will|shall|going to|let's|should|must|decided|decide|decision|agreed|"
                      r"agree|settled)\b|'ll\b", re.I)
_NEGATED = re.compile(r"\b(not|never|no)\b|n't\b", re.I)
_ACTION = re.compile(r"(?P<who>\b[A-Z][a-z]+|\bI)(?:'ll|\s+will|\s+is going to|\s+am going to|"
                     r"'m going to|\s+has to|\s+needs to)\s+(?P<task>\w.*)")
# Capitalised words that start sentences but name nobody (an owner is a person's name).
NOT_NAMES = frozenset("""It This That There What Who Which He She They Everyone Everybody Nobody
Someone Somebody Anyone Then And So But Okay Yes No Well Also Now That's It's We You Speaker
Maybe Nothing Everything Tomorrow Today Monday Tuesday Wednesday Thursday Friday Saturday
Sunday People Customers Users Sales Prices Costs Things Time Team Company Management Everything
Price Cost Work Project Meeting Next Last Good Great Fine Sure Right Alright Thanks Thank""".split())
_LEADING = re.compile(r"^((then|so|and|okay|ok|well|alright|all right|good|right|yes|great)"
                      r"\b[,.]?\s*)+", re.I)


def _commits(text: str) -> bool:
    """Whether a line commits to anything: a decision says what will (or was agreed to) happen."""
    return _COMMITS.search(text) is not None


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?。！？])\s+", text) if s.strip()]


def _line_actions(line: Line, index: int) -> list[Item]:
    out = []
    for sentence in _sentences(line.text):
        if sentence.endswith("?"):
            continue
        m = _ACTION.search(sentence)
        if m is None or m.group("who") in NOT_NAMES or len(m.group("task").split()) < 2 \
                or m.group("task").lower().startswith("be "):
            continue                       # "it will be fine": a forecast, not a task
        owner = line.speaker if m.group("who") == "I" else m.group("who")
        out.append(Item(_sentence(m.group("task")), line.start_s, line.speaker, owner, index))
    return out


def cues(lines: list[Line]) -> tuple[list[Item], list[Item]]:
    """Decisions and action items found by keyword: what people say when they decide."""
    decisions, actions = [], []
    for i, line in enumerate(lines):
        found = _line_actions(line, i)
        actions += found
        if found:
            continue                       # "Maria will send it": a task, not a decision
        for sentence in _sentences(line.text):
            m = _DECISION.search(sentence)
            if m is None or sentence.endswith("?") or len(sentence.split()) < 4:
                continue
            if _NEGATED.search(sentence[:m.start()]):
                continue                   # "we have not decided yet"
            decisions.append(Item(_sentence(_LEADING.sub("", sentence)), line.start_s,
                                  line.speaker, None, i))
    return decisions, actions
