"""Markup a submission produced, made safe for every page a person opens.

A student's written answers (markdown, with raw HTML allowed) and the outputs of their code
(``text/html``, ``application/javascript``, SVG, widget views...) reach three pages: the feedback
page, the autograded notebook a TA opens in JupyterLab, and the Formgrader, which renders that
notebook in the TA's logged-in session. Anything that runs there runs with a TA's rights.

Everything goes through one allowlist, applied by ``nh3`` (a maintained sanitizer), never by
regular expressions: ordinary HTML, MathML (the feedback pages draw formulas with it) and nothing
that runs or styles the page: no script, no event-handler attribute, no ``javascript:`` URL, no
``<style>``, no ``<iframe>``, no inline SVG (SVG is shown as an image, where browsers run none of
its scripts), only the classes code highlighting uses, and ids prefixed so that they cannot stand
in for the page's own.

- ``clean_html``: one fragment of HTML.
- ``markdown2html``: nbconvert's markdown filter, its output cleaned. ``nbgrader_config.py``
  installs both as the ``HTMLExporter``'s filters, so every page nbconvert makes (feedback, the
  Formgrader's view, whose template does not clean markdown itself) gets them; with them
  ``strip_files_prefix``, whose nbconvert version takes quadratic time on a student's brackets.
- ``sanitize_notebook`` / ``SanitizeNotebook``: the autograded notebook itself: outputs reduced to
  plain data and clean HTML, attachments and metadata that a template would paste into a page
  checked.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from typing import Any

import nbformat
from jinja2 import pass_context
from nbconvert.filters.markdown_mistune import InvalidNotebook, IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from course_tools.grading.feedback_page import latex_output_html

ID_PREFIX = "student-"

MATHML_TAGS = {
    "math", "mi", "mn", "mo", "ms", "mtext", "mspace", "mrow", "mfrac", "msqrt", "mroot", "mstyle", "merror",
    "mpadded", "mphantom", "menclose", "msub", "msup", "msubsup", "munder", "mover", "munderover",
    "mmultiscripts", "mprescripts", "none", "mtable", "mtr", "mtd", "mlabeledtr", "semantics", "annotation",
}
MATHML_ATTRIBUTES = {
    "display", "displaystyle", "scriptlevel", "mathvariant", "mathcolor", "mathbackground", "mathsize", "dir",
    "stretchy", "fence", "separator", "form", "lspace", "rspace", "accent", "accentunder", "largeop",
    "movablelimits", "symmetric", "minsize", "maxsize", "width", "height", "depth", "voffset", "linethickness",
    "columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines", "rowlines", "frame", "framespacing",
    "equalrows", "equalcolumns", "rowspan", "columnspan", "notation", "linebreak", "encoding", "bevelled",
    "numalign", "denomalign",
}


def _allowlist() -> tuple[set[str], dict[str, set[str]], dict[str, set[str]]]:
    """Tags, attributes per tag, and classes per tag that survive cleaning."""
    import nh3
    from pygments.token import STANDARD_TYPES

    tags = (set(nh3.ALLOWED_TAGS) - {"area", "map"}) | MATHML_TAGS
    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    for tag in MATHML_TAGS:
        attributes[tag] = attributes.get(tag, set()) | MATHML_ATTRIBUTES
    attributes["*"] = attributes.get("*", set()) | {"id", "title", "lang", "dir"}
    for tag in ("th", "td"):
        attributes[tag] = attributes.get(tag, set()) | {"style"}  # markdown tables align columns with it
    classes = {  # code highlighting (pygments) and nbconvert's heading anchors: nothing of the page's own
        "span": {name for name in STANDARD_TYPES.values() if name},
        "div": {"highlight"},
        "a": {"anchor-link"},
    }
    for tag, names in attributes.items():
        names.discard("class")
    return tags, attributes, classes


_TAGS, _ATTRIBUTES, _CLASSES = _allowlist()
_IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*\Z", re.IGNORECASE)
_URL_ATTRIBUTES = {"href", "src", "cite", "action", "formaction", "xlink:href", "poster", "background"}


def _attribute(element: str, attribute: str, value: str) -> str | None:
    """Per-attribute rules nh3's allowlist cannot say: data URLs only as images, fragment links
    pointing at the prefixed ids, no links from MathML (Firefox follows ``href`` on any element)."""
    if element in MATHML_TAGS and attribute in _URL_ATTRIBUTES:
        return None
    if attribute in _URL_ATTRIBUTES and value.strip().lower().startswith("data:"):
        return value if element == "img" and attribute == "src" and _IMAGE_DATA.match(value.strip()) else None
    if attribute == "href" and value.startswith("#") and not value.startswith("#" + ID_PREFIX):
        return "#" + ID_PREFIX + value[1:]
    return value


def clean_html(fragment: Any) -> str:
    """One fragment of HTML (and MathML) with everything that could run, restyle the page or
    impersonate it removed; the text stays."""
    import nh3

    text = fragment.decode() if isinstance(fragment, bytes) else str(fragment)
    return nh3.clean(text, tags=_TAGS, attributes=_ATTRIBUTES, allowed_classes=_CLASSES,
                     attribute_filter=_attribute, url_schemes={"http", "https", "mailto", "data"},
                     filter_style_properties={"text-align"}, id_prefix=ID_PREFIX,
                     clean_content_tags={"script", "style", "template", "noscript", "title", "textarea"})


class _Renderer(IPythonRenderer):
    """nbconvert's markdown renderer, except that an image naming an attachment the cell lacks
    (nbconvert stops the whole page for it) shows as an image without a source."""

    def _embed_image_or_attachment(self, src: str) -> str:
        try:
            return super()._embed_image_or_attachment(src)
        except InvalidNotebook:
            return ""


@pass_context
def markdown2html(context: Any, source: str) -> str:
    """nbconvert's markdown rendering (mistune, with its math and attachments), cleaned.

    Installed as the ``HTMLExporter``'s ``markdown2html`` filter so that every template's markdown
    is clean, the Formgrader's included (its template renders answers without ``clean_html``).
    Markdown that cannot be rendered at all is shown as its escaped text."""
    cell = context.get("cell", {}) if context is not None else {}
    path = context.get("resources", {}).get("metadata", {}).get("path", "") if context is not None else ""
    renderer = _Renderer(escape=False, attachments=cell.get("attachments", {}), path=path)
    try:
        rendered = MarkdownWithMath(renderer=renderer).render(source)
    except Exception:  # noqa: BLE001 (mistune's errors on odd input: the page must still be made)
        rendered = f"<pre>{html.escape(source)}</pre>"
    return clean_html(rendered)


_FILES_URL = re.compile(r"""(src|href)=(['"]?)/?files/""")


def strip_files_prefix(rendered: str) -> str:
    """nbconvert's ``strip_files_prefix`` for HTML (``src="files/x"`` becomes ``src="x"``), in linear
    time. Templates apply it to markdown already rendered, where nbconvert's second pattern (for
    markdown links, ``\\[.*?\\]\\(``) only meets a student's brackets, and takes time that grows with
    the square of their number."""
    return _FILES_URL.sub(r"\1=\2", rendered)


# What an output may keep: plain data, clean HTML and raster images. Everything else (scripts,
# widget views, other libraries' renderers) is dropped with a note in its place.
_IMAGES = ("image/png", "image/jpeg", "image/gif")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*\Z")
_KEPT_METADATA = {"collapsed", "scrolled", "editable", "deletable", "jupyter", "execution", "nbgrader", "tags",
                  "course_note"}
_TAG = re.compile(r"[\w-]{1,100}\Z")
_GRADE_ID = re.compile(r"[\w.-]{1,200}\Z")


def _image_ok(data: Any) -> bool:
    """Base64 text only: nbconvert pastes an image's data into an ``src`` attribute as it is."""
    if not isinstance(data, str) or not _BASE64.match(data):
        return False
    try:
        base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _svg_as_image(svg: Any) -> str:
    """An SVG drawing as an ``<img>``: drawn the same, but as an image, where browsers run none of
    its scripts and its styles stay inside it."""
    text = "".join(svg) if isinstance(svg, list) else str(svg)
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{encoded}" alt="SVG drawing">'


def _output_html(data: dict) -> str | None:
    """The HTML an output should show, made from whichever of its richer forms it has, cleaned."""
    def text(value: Any) -> str:
        return "".join(value) if isinstance(value, list) else str(value)

    if "text/html" in data:
        return clean_html(text(data["text/html"]))
    if "text/markdown" in data:
        return markdown2html({}, text(data["text/markdown"]))
    if "text/latex" in data:
        return clean_html(latex_output_html(text(data["text/latex"])))
    if "image/svg+xml" in data:
        return _svg_as_image(data["image/svg+xml"])
    return None


def _image_metadata(metadata: dict) -> dict:
    """Only the image sizes and flags nbconvert reads, with values of the right type: its templates
    paste ``width`` and ``height`` into an unquoted attribute."""
    kept: dict = {}
    for mime in _IMAGES:
        entry = metadata.get(mime)
        if not isinstance(entry, dict):
            continue
        safe = {key: entry[key] for key in ("width", "height")
                if isinstance(entry.get(key), (int, float)) and not isinstance(entry.get(key), bool)}
        if isinstance(entry.get("unconfined"), bool):
            safe["unconfined"] = entry["unconfined"]
        if entry.get("needs_background") in ("light", "dark"):
            safe["needs_background"] = entry["needs_background"]
        if safe:
            kept[mime] = safe
    return kept


def sanitize_output(output: dict) -> dict:
    """One output with only what is safe to show: plain text, clean HTML (markdown, LaTeX and SVG
    turned into it), checked raster images; a note names what was removed."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return output  # streams and errors are text, which every page escapes
    data = output.get("data", {}) if isinstance(output.get("data"), dict) else {}
    kept: dict = {}
    if isinstance(data.get("text/plain"), (str, list)):
        kept["text/plain"] = data["text/plain"]
    shown = _output_html(data)
    if shown is not None:
        kept["text/html"] = shown
    kept.update({mime: data[mime] for mime in _IMAGES if mime in data and _image_ok(data[mime])})
    removed = sorted(set(data) - set(kept) - {"text/html", "text/markdown", "text/latex", "image/svg+xml"})
    if removed and "text/plain" not in kept:
        kept["text/plain"] = f"[removed from this page: an output of type {', '.join(removed)}]"
    output["data"] = kept
    output["metadata"] = _image_metadata(output.get("metadata", {}) if isinstance(output.get("metadata"), dict)
                                         else {})
    return output


def _clean_metadata(cell: Any) -> None:
    """Cell metadata a template reads, checked: tags become class names, a grade id becomes an
    element id in the Formgrader (pasted unescaped); every other key is dropped."""
    metadata = cell.get("metadata", {})
    for key in list(metadata):
        if key not in _KEPT_METADATA:
            del metadata[key]
    if "tags" in metadata:
        tags = metadata["tags"] if isinstance(metadata["tags"], list) else []
        metadata["tags"] = [tag for tag in tags if isinstance(tag, str) and _TAG.match(tag)]
    grading = metadata.get("nbgrader")
    if grading is not None and (not isinstance(grading, dict) or not _GRADE_ID.match(str(grading.get("grade_id", "x")))):
        del metadata["nbgrader"]


def _clean_attachments(cell: Any) -> None:
    """Attachments: images only, their data checked; nbconvert pastes them into an ``src``."""
    attachments = cell.get("attachments")
    if attachments is None:
        return
    kept = {}
    for name, bundle in (attachments.items() if isinstance(attachments, dict) else []):
        if not isinstance(bundle, dict):
            continue
        images = {mime: data for mime, data in bundle.items()
                  if mime in (*_IMAGES, "image/svg+xml") and _image_ok(data)}
        if images:
            kept[name] = images
    cell["attachments"] = kept


def sanitize_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A notebook whose every output, attachment and piece of metadata is safe to show.

    Markdown and raw cells keep their text: the pages render them through ``markdown2html`` and
    ``clean_html``, and JupyterLab opens the notebook untrusted (it runs no script of it)."""
    for key in list(nb.metadata):
        if key not in ("kernelspec", "language_info", "nbgrader"):
            del nb.metadata[key]  # widget state above all: nbconvert pastes it into a <script>
    for cell in nb.cells:
        _clean_metadata(cell)
        if cell.get("cell_type") in ("markdown", "raw"):
            _clean_attachments(cell)
        for output in cell.get("outputs", []):
            sanitize_output(output)
    return nb


def sanitize_notebook_json(text: str) -> str:
    """``sanitize_notebook`` on a notebook's JSON, for the grader's writer."""
    nb = nbformat.reads(text, as_version=4)
    return nbformat.writes(sanitize_notebook(nb))


class SanitizeNotebook(Preprocessor):
    """``sanitize_notebook`` as a preprocessor: in nbgrader's autograding (the notebook it writes)
    and in every ``HTMLExporter`` (what the Formgrader and feedback pages render)."""

    enabled = Bool(True)

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict):  # noqa: ANN201 (nbconvert's pair)
        return sanitize_notebook(nb), resources
