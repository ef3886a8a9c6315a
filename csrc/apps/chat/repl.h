// The conversation driver of pyllong-chat (cmd_chat in pyllong/cli.py is its Python twin):
// one-shot -p, an interactive terminal, or user messages read line by line from a pipe.
#pragma once
#include <string>

#include "apps/chat/chat_session.h"
#include "apps/chat/options.h"

namespace pyllong::chat {

struct ReplContext {
    const ChatOptions& options;
    ChatSession& session;
    std::string model_path;
    const char* format_name;
};

// Runs the conversation; returns the process exit code.
int run_chat(const ReplContext& ctx);

}  // namespace pyllong::chat
