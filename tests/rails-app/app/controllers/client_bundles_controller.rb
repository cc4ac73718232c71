# frozen_string_literal: true

# The browser side: ssrd's client bundle (js-bundle/dist/client.js), which
# hydrates every placement the page holds, or renders it where the server
# render failed. A real app serves its client bundle from public/ or its
# asset host; this one sends the file from the repository.
class ClientBundlesController < ApplicationController
  # Rails refuses to answer JavaScript to a GET unless it comes from an XHR
  # of the same origin; this is a public static file.
  skip_forgery_protection

  def show
    send_file Rails.configuration.x.client_js, type: "text/javascript", disposition: "inline"
  end
end
