"""
httpbin's images and its sample HTML form: C{/image} (chosen by C{Accept}),
C{/image/png}, C{/image/jpeg}, C{/image/svg}, C{/image/webp}, and
C{/forms/post}, a pizza order that a browser submits to C{/post}.

The images are small files of netlab's own (three linked nodes), shipped
in the package's C{assets/}; the same picture in each format, so a
student can compare their sizes and magic numbers.
"""

from __future__ import annotations

from twisted.web import pages, static
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.dashboard import asset
from netlab.protocols.http.formats import HTML_TYPE, Document
from netlab.protocols.http.inspect import send_json

# /image/KIND: the file and its type.
IMAGE_TYPES = {
    "png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "svg": "image/svg+xml",
}
# httpbin's order: the first of these that Accept names is sent.
ACCEPTED_MEDIA_TYPES = ["image/webp", "image/svg+xml", "image/jpeg", "image/png", "image/*"]
KIND_OF = {"image/webp": "webp", "image/svg+xml": "svg", "image/jpeg": "jpeg",
           "image/png": "png", "image/*": "png", "*/*": "png"}

# httpbin's templates/forms-post.html (from the HTML5 spec's example), with a
# charset and a title.
FORMS_POST = """<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>Pizza order</title>
  </head>
  <body>
  <!-- Example form from HTML5 spec http://www.w3.org/TR/html5/forms.html#writing-a-form's-user-interface -->
  <form method="post" action="/post">
   <p><label>Customer name: <input name="custname"></label></p>
   <p><label>Telephone: <input type=tel name="custtel"></label></p>
   <p><label>E-mail address: <input type=email name="custemail"></label></p>
   <fieldset>
    <legend> Pizza Size </legend>
    <p><label> <input type=radio name=size value="small"> Small </label></p>
    <p><label> <input type=radio name=size value="medium"> Medium </label></p>
    <p><label> <input type=radio name=size value="large"> Large </label></p>
   </fieldset>
   <fieldset>
    <legend> Pizza Toppings </legend>
    <p><label> <input type=checkbox name="topping" value="bacon"> Bacon </label></p>
    <p><label> <input type=checkbox name="topping" value="cheese"> Extra Cheese </label></p>
    <p><label> <input type=checkbox name="topping" value="onion"> Onion </label></p>
    <p><label> <input type=checkbox name="topping" value="mushroom"> Mushroom </label></p>
   </fieldset>
   <p><label>Preferred delivery time: <input type=time min="11:00" max="21:00" step="900" name="delivery"></label></p>
   <p><label>Delivery instructions: <textarea name="comments"></textarea></label></p>
   <p><button>Submit order</button></p>
  </form>
  </body>
</html>
"""  # noqa: E501 - httpbin's page as it is


def chosen_kind(accept: bytes | None) -> str | None:
    """
    Which image C{/image} sends for C{accept}, as httpbin chooses (the first
    of its types the header names, qualities aside): PNG without an Accept,
    or with C{*/*}; None for a header naming no image type (406).
    """
    if accept is None:
        return "png"
    text = accept.decode("latin-1").lower()
    for media, kind in KIND_OF.items():
        if media in text:
            return kind
    return None


class ImageFile(static.Data):
    """One image, with nosniff: its type is what it says."""

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        body: bytes = super().render_GET(request)
        return body

    render_HEAD = render_GET

    def getChild(self, path: bytes, request: Request) -> IResource:
        return pages.notFound("No Such Resource", "There is nothing at this address.")


class Images(Resource):
    """C{/image}: the image C{Accept} asks for; C{/image/KIND}: that one."""

    def __init__(self) -> None:
        super().__init__()
        self.files = {
            kind: ImageFile(asset(f"image.{kind}"), media) for kind, media in IMAGE_TYPES.items()
        }
        for kind, image in self.files.items():
            self.putChild(kind.encode(), image)

    def getChild(self, path: bytes, request: Request) -> IResource:
        return pages.notFound("No Such Resource", "use /image/png, jpeg, svg or webp")

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Vary", b"Accept")
        kind = chosen_kind(request.getHeader(b"Accept"))
        if kind is None:
            request.setResponseCode(406)
            body = send_json(request, {
                "message": "Client did not request a supported media type.",
                "accept": ACCEPTED_MEDIA_TYPES,
            })
            return body
        return self.files[kind].render_GET(request)

    render_HEAD = render_GET


def images(context: HttpContext) -> Images:
    """C{/image} and C{/image/KIND}."""
    return Images()


def forms_post(context: HttpContext) -> Document:
    """C{/forms/post}: httpbin's pizza order form, which posts to C{/post}."""
    return Document(HTML_TYPE, FORMS_POST)
