# frozen_string_literal: true
#
# The small HTTP server that serves a page and its client bundle, with
# nothing but Ruby's standard library. Two scripts use it: the example
# caller (caller.rb, beside this file) and the browser test's Rails-style
# page (tests/hypernova-app/rails_page.rb).
#
#   server = PageServer.new(port: 0, client_js: "dist/client.js") { |params| "<!DOCTYPE html>..." }
#   server.port  # the port it listens on (useful with port 0)
#   server.run   # prints {"ready":true,"port":N} on stdout, then serves until the process ends
#
# It answers GET / with the HTML the block returns for the query parameters
# (a Hash of strings), GET /client.js with the file at client_js, and 404
# for anything else. Every connection gets its own thread and one response
# (Connection: close). A request that fails is logged on stderr as a JSON
# line, and that connection is closed.

require "io/wait"
require "json"
require "socket"
require "uri"

class PageServer
  # How long a connection may wait before its request line arrives.
  READ_WAIT_S = 5

  def initialize(port:, client_js:, &page)
    raise ArgumentError, "PageServer.new needs a block: query parameters in, the page's HTML out" unless page

    @client_js = client_js
    @page = page
    @server = TCPServer.new("127.0.0.1", port)
  end

  def port
    @server.addr[1]
  end

  # Announces readiness on stdout (one JSON line, flushed), then accepts
  # connections forever.
  def run
    $stdout.puts JSON.generate({ ready: true, port: port })
    $stdout.flush
    loop do
      client = @server.accept
      Thread.new(client) { |c| serve(c) }
    end
  end

  private

  def serve(client)
    client.wait_readable(READ_WAIT_S) or return
    request_line = client.gets or return
    while (line = client.gets) && line != "\r\n"; end
    _method, target = request_line.split(" ", 3)
    uri = URI.parse(target || "/")
    params = URI.decode_www_form(uri.query || "").to_h
    case uri.path
    when "/" then respond(client, "200 OK", "text/html; charset=utf-8", @page.call(params))
    when "/client.js" then respond(client, "200 OK", "text/javascript", File.binread(@client_js))
    else respond(client, "404 Not Found", "text/plain", "not found\n")
    end
  rescue StandardError => e
    warn JSON.generate({ msg: "request failed", error: "#{e.class}: #{e.message}" })
  ensure
    client.close
  end

  def respond(client, status, type, body)
    client.write("HTTP/1.1 #{status}\r\nContent-Type: #{type}\r\nContent-Length: #{body.bytesize}\r\n" \
                 "Connection: close\r\n\r\n")
    client.write(body)
  end
end
