// The code-split half of SuspenseReviews: reads its data with `use`.
import { use } from "react";

export default function ReviewList({ reviewsPromise }) {
  const reviews = use(reviewsPromise);
  return (
    <ol className="review-list">
      {reviews.map((review) => (
        <li key={review.id} className="review">
          <strong>{review.author}</strong> <span className="review-date">{review.date}</span>
          <p>{review.text}</p>
        </li>
      ))}
    </ol>
  );
}
