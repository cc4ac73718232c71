# frozen_string_literal: true
#
# A Rails-style page for the browser test (tests/browser/hypernova.test.mjs):
# the unchanged hypernova-ruby gem renders the Hypernova app's components
# through its controller helpers (an around filter and
# render_react_component, as in a Rails view), against whatever listens on
# HYPERNOVA_PORT: ssrd, or nothing (the gem then falls back to its blank
# markup and the browser renders). The page loads the app's client bundle.
#
#   HYPERNOVA_PORT=9000 CLIENT_JS=dist/client.js PORT=0 ruby rails_page.rb
#
# HYPERNOVA_RUBY_LIB: the gem's lib folder (.ci/run sets it). Needs
# Faraday (Debian:
# ruby-faraday). Prints one JSON line, {"ready":true,"port":N}, when it
# listens; then serves GET / (the page; ?name= sets Greeting's name) and
# GET /client.js.

require "io/wait"
require "json"
require "securerandom" # the gem's BlankRenderer uses it without requiring it
require "socket"
require "uri"

$LOAD_PATH.unshift(ENV.fetch("HYPERNOVA_RUBY_LIB"))
require "hypernova"
require "hypernova/controller_helpers"

Hypernova.configure do |config|
  config.host = "127.0.0.1"
  config.port = Integer(ENV.fetch("HYPERNOVA_PORT"))
end

CLIENT_JS = ENV.fetch("CLIENT_JS")

# The smallest controller the gem's helpers work in: a response whose body
# the around filter rewrites, and a view that calls render_react_component.
class PagesController
  include Hypernova::ControllerHelpers

  Response = Struct.new(:body)
  attr_reader :response

  def show(params)
    @response = Response.new("")
    hypernova_render_support { @response.body = view(params) }
    @response.body
  end

  private

  def view(params)
    <<~HTML
      <!DOCTYPE html>
      <html>
      <head><meta charset="utf-8"><title>Hypernova app on ssrd</title><link rel="icon" href="data:,"></head>
      <body>
      <main>
      #{render_react_component('Greeting.js', name: params.fetch('name', 'Rails'), places: %w[Lisbon Zürich Kyoto])}
      #{render_react_component('Counter.js', label: 'Guests', start: 1)}
      #{render_react_component('Listing.js', title: 'Loft by the canal & park', price: { amount: 120, currency: 'EUR' }, superhost: true)}
      </main>
      #{render_react_component('Footer.js', year: 2026, company: 'Acme')}
      <script>
        // What the server sent, before the client bundle runs: hydration must keep these nodes.
        window.beforeClient = { button: document.querySelector(".counter button"), h1: document.querySelector(".greeting h1"), price: document.querySelector(".listing .price") };
      </script>
      <script src="/client.js"></script>
      </body>
      </html>
    HTML
  end
end

def respond(client, status, type, body)
  client.write("HTTP/1.1 #{status}\r\nContent-Type: #{type}\r\nContent-Length: #{body.bytesize}\r\n" \
               "Connection: close\r\n\r\n")
  client.write(body)
end

def serve(client)
  client.wait_readable(5) or return
  request_line = client.gets or return
  while (line = client.gets) && line != "\r\n"; end
  _method, target = request_line.split(" ", 3)
  uri = URI.parse(target || "/")
  params = URI.decode_www_form(uri.query || "").to_h
  case uri.path
  when "/" then respond(client, "200 OK", "text/html; charset=utf-8", PagesController.new.show(params))
  when "/client.js" then respond(client, "200 OK", "text/javascript", File.binread(CLIENT_JS))
  else respond(client, "404 Not Found", "text/plain", "not found\n")
  end
rescue StandardError => e
  warn JSON.generate({ msg: "request failed", error: "#{e.class}: #{e.message}" })
ensure
  client.close
end

server = TCPServer.new("127.0.0.1", Integer(ENV.fetch("PORT", "0")))
$stdout.puts JSON.generate({ ready: true, port: server.addr[1] })
$stdout.flush
loop do
  client = server.accept
  Thread.new(client) { |c| serve(c) }
end
