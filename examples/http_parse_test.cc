// Unit tests of the HTTP request parser (examples/http_parse.c).

#include "examples/http_parse.h"

#include <gtest/gtest.h>

#include <string>

namespace {

constexpr size_t kHead = 8192;
constexpr size_t kBody = 8192;

long Parse(const std::string &s, http_request *req) {
  return http_parse_request(s.data(), s.size(), kHead, kBody, req);
}

long Parse(const std::string &s) {
  http_request req;
  return Parse(s, &req);
}

TEST(HttpParse, SimpleGet) {
  std::string s = "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";
  http_request req;
  ASSERT_EQ(Parse(s, &req), static_cast<long>(s.size()));
  EXPECT_EQ(std::string(req.method, req.method_len), "GET");
  EXPECT_EQ(std::string(req.target, req.target_len), "/plaintext");
  EXPECT_EQ(req.minor, 1);
  EXPECT_EQ(req.keep_alive, 1);
  EXPECT_EQ(req.content_length, 0u);
}

TEST(HttpParse, EveryPrefixIsIncomplete) {
  std::string s = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
  for (size_t n = 0; n < s.size(); n++)
    EXPECT_EQ(Parse(s.substr(0, n)), HTTP_INCOMPLETE) << "prefix " << n;
  EXPECT_EQ(Parse(s), static_cast<long>(s.size()));
}

TEST(HttpParse, PipelinedRequestsParseOneByOne) {
  std::string one = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string s = one + one + "GET /x HT";
  http_request req;
  long n = Parse(s, &req);
  ASSERT_EQ(n, static_cast<long>(one.size()));
  s = s.substr(static_cast<size_t>(n));
  n = Parse(s, &req);
  ASSERT_EQ(n, static_cast<long>(one.size()));
  EXPECT_EQ(Parse(s.substr(static_cast<size_t>(n))), HTTP_INCOMPLETE);
}

TEST(HttpParse, KeepAliveRules) {
  http_request req;
  ASSERT_GT(Parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &req), 0);
  EXPECT_EQ(req.keep_alive, 0);
  ASSERT_GT(Parse("GET / HTTP/1.0\r\n\r\n", &req), 0);
  EXPECT_EQ(req.keep_alive, 0);
  EXPECT_EQ(req.minor, 0);
  ASSERT_GT(Parse("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", &req),
            0);
  EXPECT_EQ(req.keep_alive, 1);
  ASSERT_GT(Parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, CLOSE\r\n\r\n",
                  &req),
            0);
  EXPECT_EQ(req.keep_alive, 0);
}

TEST(HttpParse, HeaderWhitespaceIsTrimmed) {
  http_request req;
  ASSERT_GT(Parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: \t 2 \t\r\n\r\nok",
                  &req),
            0);
  EXPECT_EQ(req.content_length, 2u);
}

TEST(HttpParse, MalformedRequestsAreBad) {
  const char *bad[] = {
      "garbage\r\n\r\n",
      "\x01\x02\x03",                          // binary, no line end yet
      "GET\r\n\r\n",                           // no target
      "GET  / HTTP/1.1\r\n\r\n",               // two spaces
      "GET / HTTP/2.0\r\n\r\n",                // not 1.x
      "GET / HTTP/1.1 \r\n\r\n",               // trailing space
      "GET / HTTP/1.1\n\n",                    // bare LF
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",      // no colon
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",    // space before colon
      "GET / HTTP/1.1\r\n folded\r\n\r\n",     // obsolete folding
      "GET / HTTP/1.1\r\nX: a\001b\r\n\r\n",   // control character
      "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "GET /a\x7f HTTP/1.1\r\n\r\n",
  };
  for (const char *s : bad) EXPECT_EQ(Parse(s), HTTP_BAD) << s;
}

TEST(HttpParse, RepeatedEqualContentLengthIsAccepted) {
  http_request req;
  std::string s =
      "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: "
      "1\r\n\r\nz";
  EXPECT_EQ(Parse(s, &req), static_cast<long>(s.size()));
}

TEST(HttpParse, OversizedHeadIsTooLarge) {
  std::string s = "GET / HTTP/1.1\r\nX-Big: " + std::string(9000, 'a');
  EXPECT_EQ(Parse(s), HTTP_TOO_LARGE);  // no end in sight within 8 KiB
  EXPECT_EQ(Parse(s + "\r\n\r\n"), HTTP_TOO_LARGE);
  // Just under the limit is fine.
  std::string ok = "GET / HTTP/1.1\r\nHost: x\r\nX: ";
  ok += std::string(kHead - ok.size() - 4, 'b') + "\r\n\r\n";
  ASSERT_EQ(ok.size(), kHead);
  EXPECT_EQ(Parse(ok), static_cast<long>(kHead));
}

TEST(HttpParse, BodyLimitAndTransferEncoding) {
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8193\r\n\r\n"),
            HTTP_BODY_TOO_LARGE);
  // The size is refused first, with or without a Host.
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nContent-Length: 8193\r\n\r\n"),
            HTTP_BODY_TOO_LARGE);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HTTP_UNSUPPORTED);
}

// RFC 9112 section 3.2: exactly one valid Host in HTTP/1.1.
TEST(HttpParse, Http11NeedsExactlyOneHost) {
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\n\r\n"), HTTP_BAD);
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), HTTP_BAD);
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n"), HTTP_BAD);
  std::string ok = "GET / HTTP/1.1\r\nhOsT: example.com\r\n\r\n";
  EXPECT_EQ(Parse(ok), static_cast<long>(ok.size()));
}

TEST(HttpParse, Http10MayOmitHostButNotRepeatIt) {
  std::string none = "GET / HTTP/1.0\r\n\r\n";
  EXPECT_EQ(Parse(none), static_cast<long>(none.size()));
  std::string one = "GET / HTTP/1.0\r\nHost: a\r\n\r\n";
  EXPECT_EQ(Parse(one), static_cast<long>(one.size()));
  EXPECT_EQ(Parse("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), HTTP_BAD);
  EXPECT_EQ(Parse("GET / HTTP/1.0\r\nHost: a b\r\n\r\n"), HTTP_BAD);
}

TEST(HttpParse, ValidHostValues) {
  const char *good[] = {
      "example.com", "example.com:8080", "127.0.0.1:80", "[::1]", "[::1]:443",
      "[v1.fe80::a+en1]", "xn--bcher-kva.example", "a-b_c~d.e", "%41b",
      "h:",   // an empty port is allowed by the grammar
      "",     // an empty Host: the target has no authority
      "sub!$&'()*+,;=delims",
  };
  for (const char *h : good) {
    std::string s = std::string("GET / HTTP/1.1\r\nHost: ") + h + "\r\n\r\n";
    EXPECT_EQ(Parse(s), static_cast<long>(s.size())) << h;
  }
}

TEST(HttpParse, InvalidHostValuesAreBad) {
  const char *bad[] = {
      "a b",          // white space inside
      "user@host",    // userinfo is not part of Host
      "host:80x",     // port not digits
      "host:80:90",   // two ports
      "[::1",         // unclosed literal
      "[]",           // empty literal
      "[::1]x",       // junk after the literal
      "::1",          // an IPv6 address needs brackets
      "host/path",    // a path
      "%4",           // short percent escape
      "%zz",          // not hex
      "h\xc3\xa9",    // raw UTF-8 (must be punycode)
      "x]",
  };
  for (const char *h : bad) {
    std::string s = std::string("GET / HTTP/1.1\r\nHost: ") + h + "\r\n\r\n";
    EXPECT_EQ(Parse(s), HTTP_BAD) << h;
  }
}

// The Host checks run once the head is complete, before the body arrives,
// and a complete head with its body still missing reports head_len.
TEST(HttpParse, HeadLengthWhileTheBodyIsMissing) {
  http_request req;
  std::string head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n";
  EXPECT_EQ(Parse(head + "ab", &req), HTTP_INCOMPLETE);
  EXPECT_EQ(req.head_len, head.size());
  EXPECT_EQ(Parse(head.substr(0, head.size() - 1), &req), HTTP_INCOMPLETE);
  EXPECT_EQ(req.head_len, 0u);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"), HTTP_BAD);
}

TEST(HttpParse, NullArgumentsAreBad) {
  http_request req;
  EXPECT_EQ(http_parse_request(nullptr, 0, kHead, kBody, &req), HTTP_BAD);
  EXPECT_EQ(http_parse_request("GET", 3, kHead, kBody, nullptr), HTTP_BAD);
}

}  // namespace
