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
# Faraday (Debian: ruby-faraday). Prints one JSON line,
# {"ready":true,"port":N}, when it listens; then serves GET / (the page;
# ?name= sets Greeting's name) and GET /client.js, with the example
# caller's server (examples/caller/page_server.rb).

require "securerandom" # the gem's BlankRenderer uses it without requiring it
require_relative "../../examples/caller/page_server"

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

server = PageServer.new(port: Integer(ENV.fetch("PORT", "0")), client_js: CLIENT_JS) do |params|
  PagesController.new.show(params)
end
server.run
