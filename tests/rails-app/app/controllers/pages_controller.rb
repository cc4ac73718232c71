# frozen_string_literal: true

class PagesController < ApplicationController
  # Collects the view's render_react_component calls and sends them to the
  # tier as one batch once the view is rendered.
  around_action :hypernova_render_support

  def show
    @name = params.fetch(:name, "Rails")
  end
end
