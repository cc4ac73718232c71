// styled-components on the server: component styles, a theme, a transient
// prop, keyframes and a global style. The render function collects the
// styles with a ServerStyleSheet and returns them beside the HTML, in meta.
// The named `styled` export: under Node's ESM rules the default import of
// styled-components' CommonJS build is the whole module object.
import { ThemeProvider, createGlobalStyle, css, keyframes, styled } from "styled-components";

const GlobalStyle = createGlobalStyle`
  body { margin: 0; font-family: ${(p) => p.theme.font}; }
`;

const fadeIn = keyframes`
  from { opacity: 0; }
  to { opacity: 1; }
`;

const Card = styled.article`
  border: 1px solid ${(p) => p.theme.border};
  border-radius: 12px;
  padding: 16px;
  animation: ${fadeIn} 0.2s ease-in;
`;

const Title = styled.h3`
  margin: 0 0 8px;
  color: ${(p) => p.theme.accent};
`;

const Button = styled.button`
  padding: 8px 12px;
  border: 0;
  ${(p) =>
    p.$primary
      ? css`
          background: ${p.theme.accent};
          color: white;
        `
      : css`
          background: transparent;
          color: ${p.theme.accent};
        `}
`;

export default function StyledCard({ title, body, actions = [], theme }) {
  return (
    <ThemeProvider theme={theme}>
      <GlobalStyle />
      <Card>
        <Title>{title}</Title>
        <p>{body}</p>
        {actions.map((a, i) => (
          <Button key={a} type="button" $primary={i === 0}>
            {a}
          </Button>
        ))}
      </Card>
    </ThemeProvider>
  );
}
