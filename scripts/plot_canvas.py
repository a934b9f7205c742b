"""A tiny drawing surface for the plots in docs/: records rectangles, lines and text, then writes
them as SVG (standard library only; matplotlib is not installed everywhere this runs) or as PNG
with Pillow (Debian's python3-pil). Used by plot-bench.py and plot-loss.py."""
import math
from xml.sax.saxutils import escape


class Canvas:
    """Records rectangles, lines and text, then writes them as SVG or (with Pillow) PNG."""

    def __init__(self, width, height):
        self.width, self.height, self.items = width, height, []

    def rect(self, x, y, w, h, fill):
        self.items.append(("rect", x, y, w, h, fill))

    def line(self, x1, y1, x2, y2, color="#222", dashed=False):
        self.items.append(("line", x1, y1, x2, y2, color, dashed))

    def text(self, x, y, text, size=11, anchor="start", color="#000", bold=False):
        self.items.append(("text", x, y, text, size, anchor, color, bold))

    def svg(self):
        out = ['<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" '
               'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">'.format(self.width, self.height),
               '<rect width="100%" height="100%" fill="white"/>']
        for item in self.items:
            if item[0] == "rect":
                _, x, y, w, h, fill = item
                out.append('<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"/>'
                           .format(x, y, w, h, fill))
            elif item[0] == "line":
                _, x1, y1, x2, y2, color, dashed = item
                out.append('<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}"{}/>'
                           .format(x1, y1, x2, y2, color, ' stroke-dasharray="5,3"' if dashed else ""))
            else:
                _, x, y, text, size, anchor, color, bold = item
                out.append('<text x="{:.1f}" y="{:.1f}" font-size="{}" text-anchor="{}" fill="{}"{}>{}'
                           '</text>'.format(x, y, size, anchor, color,
                                            ' font-weight="bold"' if bold else "", escape(text)))
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def png(self, path):
        from PIL import Image, ImageDraw, ImageFont

        scale = 2  # drawn at twice the size, so the text stays legible
        image = Image.new("RGB", (self.width * scale, self.height * scale), "white")
        draw = ImageDraw.Draw(image)
        fonts = {}

        def font(size, bold):
            key = (size, bold)
            if key not in fonts:
                name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
                try:
                    fonts[key] = ImageFont.truetype(name, size * scale)
                except OSError:
                    fonts[key] = ImageFont.load_default()
            return fonts[key]

        for item in self.items:
            if item[0] == "rect":
                _, x, y, w, h, fill = item
                draw.rectangle([x * scale, y * scale, (x + w) * scale, (y + h) * scale], fill=fill)
            elif item[0] == "line":
                _, x1, y1, x2, y2, color, dashed = item
                if not dashed:
                    draw.line([x1 * scale, y1 * scale, x2 * scale, y2 * scale], fill=color, width=scale)
                    continue
                length = math.hypot(x2 - x1, y2 - y1)
                steps = max(1, int(length // 8))
                for i in range(steps):
                    a, b = i / steps, min(1.0, (i + 5 / 8) / steps)
                    draw.line([(x1 + (x2 - x1) * a) * scale, (y1 + (y2 - y1) * a) * scale,
                               (x1 + (x2 - x1) * b) * scale, (y1 + (y2 - y1) * b) * scale],
                              fill=color, width=scale)
            else:
                _, x, y, text, size, anchor, color, bold = item
                f = font(size, bold)
                width = draw.textlength(text, font=f)
                offset = {"start": 0, "middle": width / 2, "end": width}[anchor]
                draw.text((x * scale - offset, y * scale), text, font=f, fill=color, anchor="ls")
        image.save(path)
