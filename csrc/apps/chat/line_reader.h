// Reads user messages from stdin with read(2), so Ctrl-C (EINTR, see interrupt.h) is seen
// while waiting for input instead of ending the program. Mirrors _read_message in
// pyllong/cli.py: a line ending in a backslash continues the message on the next line.
#pragma once
#include <string>

namespace pyllong::chat {

enum class ReadStatus { Message, EndOfInput, Interrupted };

class LineReader {
public:
    explicit LineReader(bool interactive) : interactive_(interactive) {}

    // One user message (continuation lines joined with '\n'). On a terminal, prompts "> "
    // (". " for continuation lines) on stdout.
    ReadStatus read_message(std::string& message);

private:
    ReadStatus read_line(std::string& line);

    bool interactive_;
    std::string buffer_;
    bool eof_ = false;
};

}  // namespace pyllong::chat
