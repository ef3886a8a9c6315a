// Ctrl-C handling: SIGINT only raises a flag (the program's one piece of global mutable
// state). The generation loop polls it between tokens and ends the current reply; the input
// reader sees its read() interrupted (no SA_RESTART) and asks again instead of exiting.
#pragma once

namespace pyllong::chat {

void install_interrupt_handler();
bool interrupt_requested();
void clear_interrupt();

}  // namespace pyllong::chat
