// Gemma 2's chat format and a multi-turn chat that keeps its KV cache
// between turns, so each turn runs only its own new tokens.
//
//   <start_of_turn>user\n{message}<end_of_turn>\n<start_of_turn>model\n{reply}<end_of_turn>\n...
//
// Gemma 2 has no system role: a system message is folded into the first
// user turn as "{system}\n\n{user}" (what Google's and common chat front
// ends do). As in the reference chat template, message text is trimmed.
#pragma once

#include <string>
#include <vector>

#include "gemma2/generate.hpp"

GEMMA2_BEGIN_NAMESPACE

// Who speaks a chat message.
enum class Role { System, User, Model };

// One chat message.
struct Message {
  Role role;
  std::string content;
};

namespace detail {
inline std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(ws) - b + 1);
}
inline std::string user_turn(const std::string& text) {
  return "<start_of_turn>user\n" + trim(text) + "<end_of_turn>\n<start_of_turn>model\n";
}
}  // namespace detail

// The prompt text (without BOS) of a conversation. Messages must be an
// optional system message, then user and model turns alternating, starting
// with user. With add_generation_prompt and a final user turn, the text ends
// with the opening of the model's turn.
inline Result<std::string> format_chat(const std::vector<Message>& messages, bool add_generation_prompt = true) {
  std::string text, system;
  size_t i = 0;
  if (!messages.empty() && messages[0].role == Role::System) system = detail::trim(messages[i++].content);
  for (Role expected = Role::User; i < messages.size(); ++i) {
    const Message& m = messages[i];
    if (m.role == Role::System) return detail::err("chat: a system message may only come first (message ", i, ")");
    if (m.role != expected)
      return detail::err("chat: message ", i, " should be a ", expected == Role::User ? "user" : "model",
                         " turn: user and model turns must alternate, starting with user");
    if (m.role == Role::User) {
      text += detail::user_turn(system.empty() ? m.content : system + "\n\n" + detail::trim(m.content));
      system.clear();
    } else {
      text += detail::trim(m.content) + "<end_of_turn>\n";
    }
    expected = expected == Role::User ? Role::Model : Role::User;
  }
  if (!system.empty()) return detail::err("chat: a system message needs a user message after it");
  if (!messages.empty() && messages.back().role == Role::User && !add_generation_prompt) {
    text.erase(text.size() - std::string("<start_of_turn>model\n").size());
  }
  return text;
}

// A conversation held in a Session. Each send() runs only the new turn's
// tokens: earlier turns stay in the cache. The tokenizer must outlive the chat.
template <class Model, class Cache = KVCache>
class Chat {
 public:
  Chat(Session<Model, Cache> session, const Tokenizer& tokenizer, std::string system = "")
      : session_(std::move(session)), tok_(&tokenizer), system_(detail::trim(system)) {}

  // Sends a user message and generates the model's reply, streaming text to
  // on_text. The stop tokens <eos> and <end_of_turn> are always added. With
  // options.context_shift on, keep -1 keeps the first turn: the system
  // message (a persona, instructions) stays in view however long the chat.
  template <class SamplerFn>
  Result<GenerateResult> send(const std::string& user, SamplerFn&& sampler, GenerateOptions options = {},
                              const std::function<bool(std::string_view)>& on_text = {}) {
    const TokenHistory& history = session_.tokens();
    std::string text;
    if (!history.empty() && history.back() != tok_->end_of_turn_id()) text += "<end_of_turn>";  // reply was cut short
    if (!history.empty()) text += "\n";
    text += detail::user_turn(messages_.empty() && !system_.empty() ? system_ + "\n\n" + detail::trim(user) : user);
    auto ids = history.empty() ? tok_->encode_prompt(text) : tok_->encode(text);
    if (!ids) return Error{ids.message()};
    if (history.empty()) first_turn_ = static_cast<int>(ids->size());
    if (options.context_shift.keep < 0) options.context_shift.keep = std::max(first_turn_, 1);
    for (int32_t s : default_stop_tokens(*tok_)) options.stop_tokens.push_back(s);
    auto r = generate(session_, *ids, std::forward<SamplerFn>(sampler), options, tok_, on_text);
    if (r) {
      messages_.push_back({Role::User, user});
      messages_.push_back({Role::Model, r->text});
    }
    return r;
  }

  // The conversation so far (user and model messages; the system message is
  // not repeated here).
  const std::vector<Message>& messages() const { return messages_; }
  const Session<Model, Cache>& session() const { return session_; }
  const TokenHistory& history() const { return session_.tokens(); }
  const Cache& cache() const { return session_.cache(); }

 private:
  Session<Model, Cache> session_;
  const Tokenizer* tok_;
  std::string system_;
  std::vector<Message> messages_;
  int first_turn_ = 0;  // tokens of the first turn (BOS, system and user message): what a shift keeps
};

GEMMA2_END_NAMESPACE
