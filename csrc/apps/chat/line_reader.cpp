#include "apps/chat/line_reader.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "apps/chat/interrupt.h"

namespace pyllong::chat {

ReadStatus LineReader::read_line(std::string& line) {
    while (true) {
        const size_t nl = buffer_.find('\n');
        if (nl != std::string::npos) {
            line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            return ReadStatus::Message;
        }
        if (eof_) {
            if (buffer_.empty()) return ReadStatus::EndOfInput;
            line.swap(buffer_);  // a last line without '\n'
            buffer_.clear();
            return ReadStatus::Message;
        }
        if (interrupt_requested()) return ReadStatus::Interrupted;
        char chunk[4096];
        const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
        if (n > 0) {
            buffer_.append(chunk, static_cast<size_t>(n));
        } else if (n == 0) {
            eof_ = true;
        } else if (errno == EINTR) {
            if (interrupt_requested()) return ReadStatus::Interrupted;
        } else {
            eof_ = true;  // an unreadable stdin ends the conversation like EOF
        }
    }
}

ReadStatus LineReader::read_message(std::string& message) {
    message.clear();
    bool continued = false;
    while (true) {
        if (interactive_) {
            std::fputs(continued ? ". " : "> ", stdout);
            std::fflush(stdout);
        }
        std::string line;
        const ReadStatus s = read_line(line);
        if (s == ReadStatus::Interrupted) return s;
        if (s == ReadStatus::EndOfInput) {
            if (!continued) return s;
            message.pop_back();  // the '\n' that joined the last continued line
            return ReadStatus::Message;
        }
        if (!line.empty() && line.back() == '\\') {
            line.pop_back();
            message += line + "\n";
            continued = true;
            continue;
        }
        message += line;
        return ReadStatus::Message;
    }
}

}  // namespace pyllong::chat
