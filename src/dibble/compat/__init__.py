"""Porting layers for programs written for dibble's two ancestors.

``dibble.compat.dibbler`` keeps the camelCase API of the Dibbler plug-in web
framework; ``dibble.compat.awe`` keeps the Astro-WISE web-services names.
The core API is PEP 8 only; the old names live here and nowhere else.
"""
