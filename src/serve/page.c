/* The web page, embedded from web/index.html at build time (assembler .incbin), so the
 * binary serves it with no files beside it and no network. NUL-terminated. */
#include "serve.h"

__asm__(".section .rodata\n"
        ".global serve_page_html\n"
        ".hidden serve_page_html\n"
        ".type serve_page_html, @object\n"
        ".balign 16\n"
        "serve_page_html:\n"
        ".incbin \"src/serve/web/index.html\"\n"
        ".byte 0\n"
        ".size serve_page_html, . - serve_page_html\n"
        ".previous\n");
